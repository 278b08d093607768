"""Regenerate tests/data/corpus: malformed Label Studio exports and images for the dataset stage.

    python tests/data/make_corpus.py

Each case in corpus/cases.json names an export file, the parameters to build it with, and what must happen:
`error` (a one-line MlopsError containing `contains`, the previous dataset left as it was) or `drop` (the build
succeeds, task `task_id` is reported in dataset.json with a reason containing `contains`). Drop cases pair the
bad task (id 2) with a good one (id 1). `needs: labelstudio` cases fetch from the real server fixture.
"""
import json, shutil
from pathlib import Path
from mlops_nb.core import digit_png, dumps_json

HERE = Path(__file__).parent/'corpus'

def ann(aid, value='3', when='2026-01-01T00:00:00Z', from_name='label', **kw):
    res = [] if value is None else [{'from_name': from_name, 'to_name': 'image', 'type': 'choices', 'value': {'choices': [value]}}]
    return {'id': aid, 'result': res, 'was_cancelled': False, 'ground_truth': False, 'created_at': when, 'updated_at': when, **kw}

GOOD = {'id': 1, 'data': {'image': 'ok.png'}, 'annotations': [ann(1, '3')]}
def task(**kw): return {'id': 2, 'data': {'image': 'ok2.png'}, 'annotations': [ann(2, '5')], **kw}

CASES = []
def error(name, content, contains, **params):
    CASES.append({'name': name, 'file': f'{name}.json', 'expect': 'error', 'contains': contains, 'params': params, '_c': content})
def drop(name, bad, contains, needs=None, extra=(), **params):
    CASES.append({'name': name, 'file': f'{name}.json', 'expect': 'drop', 'task_id': 2, 'contains': contains,
                  'params': params, 'needs': needs, '_c': [GOOD, bad, *extra]})

# whole-export problems: one-line errors
error('not_json', '[{"id": 1, "data": {"image": "ok.png"}', 'is not valid JSON (line 1')
error('not_utf8', b'\xff\xfe\x00[', 'is not valid JSON')
error('csv_export', 'image,choice\nok.png,3\n', 'is not valid JSON')
error('top_level_object', {'tasks': [GOOD]}, 'holds a JSON dict, not a list of tasks')
error('top_level_string', 'tasks', 'holds a JSON str, not a list of tasks')
error('task_not_object', [GOOD, 'ok2.png'], 'item 1 is a str, not a task object')
error('task_without_id', [GOOD, {'data': {'image': 'ok2.png'}}], 'item 1 has task id None')
error('task_id_not_int', [GOOD, {'id': '2', 'data': {'image': 'ok2.png'}}], "item 1 has task id '2', expected an integer")
error('duplicate_task_ids', [GOOD, task(), dict(task(), data={'image': 'ok.png'})], 'task 2 appears twice (items 1 and 2)')
error('json_min_export', [{'id': 1, 'image': 'ok.png', 'label': '3'}], 'a JSON-MIN or CSV-style export?')
error('empty_export', [], 'no usable task in empty_export.json (0 tasks')
error('nothing_usable', [dict(GOOD, annotations=[])], 'no usable task')
error('labels_not_in_map', [GOOD, task(), dict(task(), id=3, annotations=[ann(3, 'cat')]), dict(task(), id=4, annotations=[ann(4, 'cat')])],
      "labels not in labels_map: 'cat' (2 tasks), '5' (1 task)", labels_map={'3': 'three'})
error('several_controls', [GOOD, task(annotations=[ann(2, '5', from_name='digit')])], "several choices controls: 'label' (1), 'digit' (1)")
error('corrupt_fails_on_request', [GOOD, task(data={'image': 'truncated.png'})], 'task 2: corrupt PNG', on_corrupt='fail')
error('ls_path_without_url', [GOOD, task(data={'image': '/data/upload/1/x.png'})], 'set the url parameter or LABEL_STUDIO_URL')
error('bad_policy', [GOOD], "parameter policy='newest' is not one of", policy='newest')
error('bad_valid_pct', [GOOD], 'valid_pct=1.5 must be in [0, 1)', valid_pct=1.5)

# per-task problems: reported drops naming the task
drop('task_without_data', {'id': 2, 'annotations': [ann(2)]}, 'task has no data')
drop('data_not_object', {'id': 2, 'data': 'ok2.png', 'annotations': [ann(2)]}, 'task has no data')
drop('missing_image_key', task(data={'img': 'ok2.png'}), "data has no 'image' key (has: img)")
drop('image_not_string', task(data={'image': 42}), "data['image'] is not an image reference")
drop('annotations_not_list', task(annotations={'id': 2}), 'annotations is not a list')
drop('no_annotations', task(annotations=[]), 'unlabeled (no annotations)')
drop('empty_result', task(annotations=[ann(2, None)]), 'no usable annotation (empty result)')
drop('all_cancelled', task(annotations=[ann(2, '5', was_cancelled=True)]), 'every annotation was cancelled')
drop('unknown_from_name', task(annotations=[ann(2, '5', from_name='sentiment')]), "no choices result from 'label' (found: sentiment)", from_name='label')
drop('two_choices', task(annotations=[{**ann(2), 'result': [{'from_name': 'label', 'to_name': 'image', 'type': 'choices', 'value': {'choices': ['3', '5']}}]}]),
     '2 choices in one result (single-choice expected)')
drop('choice_not_string', task(annotations=[{**ann(2), 'result': [{'from_name': 'label', 'to_name': 'image', 'type': 'choices', 'value': {'choices': [None]}}]}]),
     'is not a string')
drop('majority_tie', task(annotations=[ann(2, '5'), ann(3, '6', completed_by=2)]), "tie between '5', '6' (1 vote each)", policy='majority')
drop('label_not_in_map_dropped', task(annotations=[ann(2, 'cat')]), "label 'cat' is not in labels_map", labels_map={'3': '3'}, unmapped='drop')
drop('label_excluded_by_map', task(annotations=[ann(2, 'skip')]), "label 'skip' excluded by labels_map", labels_map={'3': '3', 'skip': None})
drop('traversal_path', task(data={'image': '../outside.png'}), 'contains ".."')
drop('traversal_nested', task(data={'image': 'sub/../../outside.png'}), 'contains ".."')
drop('absolute_outside', task(data={'image': '/etc/hostname'}), 'is outside rawdata_dir')
drop('symlink_out', task(data={'image': 'link-out.png'}), 'is a symlink out of rawdata_dir')
drop('missing_file', task(data={'image': 'nope.png'}), 'file nope.png not found in rawdata_dir')
drop('non_image_bytes', task(data={'image': 'notimage.png'}), 'not an image')
drop('truncated_png', task(data={'image': 'truncated.png'}), 'corrupt PNG')
drop('empty_file', task(data={'image': 'empty.png'}), 'empty file')
drop('disallowed_host', task(data={'image': 'https://evil.example.com/x.png'}), 'host evil.example.com is not in allowed_hosts', url='http://127.0.0.1:9')
drop('unsupported_scheme', task(data={'image': 'file:///etc/passwd'}), 'unsupported scheme file://')
drop('same_image_other_label', task(), 'same image as task 3 with a different label (5, 6)', extra=[dict(task(annotations=[ann(3, '6')]), id=3)])
drop('duplicate_image', task(data={'image': 'ok.png'}, annotations=[ann(2, '3')]), 'duplicate image of task 1')
drop('local_files_traversal', task(data={'image': '/data/local-files/?d=../../etc/passwd'}), 'contains ".."')
drop('local_files_encoded_traversal', task(data={'image': '/data/local-files/?d=img%2F%2E%2E%2F%2E%2E%2Fetc'}),
     'contains ".."')
drop('local_files_absolute', task(data={'image': '/data/local-files/?d=/etc/passwd'}), 'is absolute')
drop('upload_traversal', task(data={'image': '/data/upload/../../api/projects'}), 'contains ".."')
drop('image_404_on_labelstudio', task(data={'image': '/data/upload/999999/missing.png'}), 'HTTP 500 from Label Studio', needs='labelstudio')

def main():
    if HERE.exists(): shutil.rmtree(HERE)
    (HERE/'raw'/'sub').mkdir(parents=True)
    png3,_ = digit_png(3); png5,_ = digit_png(5)
    (HERE/'raw'/'ok.png').write_bytes(png3); (HERE/'raw'/'ok2.png').write_bytes(png5)
    (HERE/'raw'/'notimage.png').write_bytes(b'<html><body>404 Not Found</body></html>\n')
    (HERE/'raw'/'truncated.png').write_bytes(png5[:len(png5)//2])
    (HERE/'raw'/'empty.png').write_bytes(b'')
    (HERE/'outside.png').write_bytes(png5)
    for c in CASES:
        content = c.pop('_c')
        data = content if isinstance(content, bytes) else (content if isinstance(content, str) and c['name'] != 'top_level_string' else dumps_json(content))
        (HERE/c['file']).write_bytes(data if isinstance(data, bytes) else data.encode())
    (HERE/'cases.json').write_text(dumps_json(CASES))
    print(f'{len(CASES)} cases in {HERE}')

if __name__ == '__main__': main()
