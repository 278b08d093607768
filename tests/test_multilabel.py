"""Multi-label projects with the real Label Studio (issue 30): the task type read from the labeling config, the label
policy for sets, a project exported, built, trained, evaluated and compared through the CLI, a mixed config refused."""
import json
import pytest
import yaml
from mlops_nb.core import DIGIT_TAGS, digit_png
from mlops_nb.folder import DatasetFolder
from mlops_nb.labelstudio import choice_result, label_config
from mlops_nb.labelstudio_server import seed_demo

TAGS = sorted(DIGIT_TAGS)
TAGS_CONFIG = label_config(TAGS, choice='multiple')

def ann(labels, **kw): return {'result': choice_result(list(labels)), **kw}

def run_ok(run_cli, project, env, *args):
    r = run_cli('run', *args, cwd=project, env=env)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    return r

def test_label_policy_for_sets(labelstudio, project, run_cli):
    """Ground truth wins whole, a submitted annotation without a choice is a negative (kept), a cancelled one never
    counts, two annotators split on one label tie (dropped, named), a value mapped to null leaves the set, a value
    outside the map drops its task by name."""
    ls = labelstudio
    p = ls.make_project('ml-policy', [], label_config=TAGS_CONFIG)
    urls = ls.upload(p.id, {f't{i}.png': digit_png(i)[0] for i in range(7)})
    other = ls.add_user('tags-annotator@example.com')
    tasks = [('gt', [ann(['even']), ann(['over-four'], ground_truth=True)]),
             ('none', [ann([])]),
             ('cancelled', [ann([], was_cancelled=True)]),
             ('tie', [ann(['even', 'has-a-loop']), ann(['even'], completed_by=other)]),
             ('majority', [ann(['even', 'has-a-loop']), ann(['even', 'has-a-loop'], completed_by=other), ann(['even'])]),
             ('excluded', [ann(['even', 'over-four'])]),
             ('unmapped', [ann(['seven'])])]
    ids = dict(zip([k for k,_ in tasks], ls.import_tasks(p.id, [{'data': {'image': u}, 'annotations': a}
                                                              for u,(_,a) in zip(urls, tasks)])))
    params = {'labelstudio': {'policy': {'project': 'ml-policy'}},
              'dataset': {'policy': {'policy': 'majority', 'labels_map': {'even': 'even', 'has-a-loop': 'loop',
                                                                          'over-four': None},
                                     'unmapped': 'drop', 'benchmark': '', 'valid_pct': 0.5}}}
    (project/'params.yaml').write_text(yaml.safe_dump(params))
    run_ok(run_cli, project, ls.env, 'labelstudio', '--section', 'labelstudio.policy')
    run_ok(run_cli, project, ls.env, 'dataset', '--section', 'dataset.policy')
    f = DatasetFolder.read(project/'data/datasets/policy')
    assert f.multi_label and f.meta['task'] == 'multi-label'
    got = {int(r['task_id']): f.labels(r) for r in f.rows}
    assert got == {ids['gt']: (), ids['none']: (), ids['majority']: ('even', 'loop'), ids['excluded']: ('even',)}, got
    reasons = {d['task_id']: d['reason'] for d in f.meta['dropped']}
    assert reasons == {ids['cancelled']: 'every annotation was cancelled',
                       ids['tie']: "tie on 'loop' (1 of 2 annotations each)",
                       ids['unmapped']: "label 'seven' is not in labels_map"}, reasons
    assert f.classes == ['even', 'loop']

def test_multi_label_project_end_to_end(labelstudio, labelstudio_env, project, run_cli):
    """Seeded tag projects through every stage by the CLI: a multi-label dataset, a model with its threshold, the
    benchmark's headline numbers (macro F1 and mAP, no accuracy), and a comparison gated on macro F1 and mAP."""
    seed_demo(n_pool=160, n_bench=40, seed=3, pool='tags', benchmark='tags-benchmark', multi_label=True)
    params = {'labelstudio': {'tags': {}, 'tags-benchmark': {}},
              'dataset': {'tags': {'benchmark': 'data/datasets/tags-benchmark'}},
              'benchmark': {'tags-benchmark': {'mode': 'benchmark'}},
              'train': {'dataset': 'data/datasets/tags', 'size': 16, 'epochs': 6, 'bs': 16, 'lr': 0.01},
              'evaluate': {'benchmark_dir': 'data/datasets/tags-benchmark'},
              'compare': {'champion': 'champion.json', 'dataset_dir': 'data/datasets/tags'}}
    (project/'params.yaml').write_text(yaml.safe_dump(params))
    env = labelstudio.env
    for section in ('labelstudio.tags', 'labelstudio.tags-benchmark'):
        run_ok(run_cli, project, env, 'labelstudio', '--section', section)
    run_ok(run_cli, project, env, 'dataset', '--section', 'benchmark.tags-benchmark')
    run_ok(run_cli, project, env, 'dataset', '--section', 'dataset.tags')
    pool = DatasetFolder.read(project/'data/datasets/tags')
    assert pool.multi_label and pool.classes == TAGS
    assert any(pool.labels(r) == () for r in pool.rows)   # digits 1 and 3: none of the tags, kept
    run_ok(run_cli, project, env, 'train')
    card = json.loads((project/'data/models/model.json').read_text())
    assert (card['task'], card['classes'], 0 < card['threshold'] < 1) == ('multi-label', TAGS, True)
    run_ok(run_cli, project, env, 'evaluate')
    summary = json.loads((project/'metrics/benchmark.summary.json').read_text())
    assert set(summary) == {'macro_f1', 'map', 'subset_accuracy', 'hamming_loss', 'n'}, summary
    assert summary['n'] == len(DatasetFolder.read(project/'data/datasets/tags-benchmark').rows)
    assert summary['map'] > 0.6 and summary['macro_f1'] > 0.5, summary   # tiny data, a few epochs: well above chance
    full = json.loads((project/'metrics/benchmark.json').read_text())
    assert set(full['per_class']) == set(TAGS) and 'average_precision' in full['per_class']['even']
    (project/'champion.json').write_text(json.dumps({**full, 'macro_f1': full['macro_f1'] + 0.05}))
    r = run_cli('run', 'compare', cwd=project, env=env)
    verdict = json.loads((project/'reports/compare.json').read_text())
    assert [g['metric'] for g in verdict['gates']] == ['macro_f1', 'map'], verdict['gates']
    assert [g['passed'] for g in verdict['gates']] == [False, True] and r.returncode == 0, r.stderr[-2000:]
    report = (project/'reports/compare.md').read_text()
    assert '| map |' in report and '| subset_accuracy |' in report and '❌ max drop 0.01' in report
    mistakes = json.loads((project/'plots/mistakes/mistakes.json').read_text())
    assert all(set(m) >= {'missed', 'spurious'} for m in mistakes) and mistakes, mistakes[:2]

def test_mixed_config_refused(labelstudio, project, run_cli):
    "Choices with region labels: the dataset stage refuses with one line naming the project and the control, exit 2."
    ls = labelstudio
    config = TAGS_CONFIG.replace('</View>', '<RectangleLabels name="box" toName="image"><Label value="a"/>'
                                            '</RectangleLabels></View>')
    p = ls.make_project('ml-mixed', [], label_config=config)
    [url] = ls.upload(p.id, {'m.png': digit_png(0)[0]})
    ls.import_tasks(p.id, [{'data': {'image': url}, 'annotations': [ann(['even'])]}])
    (project/'params.yaml').write_text(yaml.safe_dump({'labelstudio': {'mixed': {'project': 'ml-mixed'}},
                                                       'dataset': {'mixed': {'benchmark': ''}}}))
    run_ok(run_cli, project, ls.env, 'labelstudio', '--section', 'labelstudio.mixed')
    r = run_cli('run', 'dataset', '--section', 'dataset.mixed', cwd=project, env=ls.env)
    lines = [l for l in r.stderr.splitlines() if 'region labels' in l]
    assert r.returncode == 2 and len(lines) == 1, r.stderr[-3000:]
    assert "project 'ml-mixed'" in lines[0] and "<RectangleLabels> 'box'" in lines[0]
    assert 'supported: one <Choices>' in lines[0]
    assert 'Traceback' not in r.stderr + r.stdout and not (project/'data/datasets/mixed').exists()
