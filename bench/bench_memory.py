"""Peak memory (RSS) of each stage on the small demo (see _demo.py: local Label Studio, 60 + 30 tasks, training 16 px /
1 epoch), two ways, stage after stage in pipeline order:
  - the stage's entry function alone in a fresh `python -c` (its peak RSS: VmHWM, as ru_maxrss keeps the parent's peak
    across fork + exec);
  - `mlops-nb run STAGE` (CLI process + papermill kernel): the peak of the CLI's RSS plus its largest descendant's (the
    kernel), polled every 20 ms with psutil, and the kernel's own peak.
Both build the stage's typed parameters from the demo's params.yaml the same way (`build_params`); the export is forced and the image cache is off, so both
do the same work.

Usage: python bench/bench_memory.py
"""
import os, shutil, subprocess, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from _common import row, record
import _demo

P = ('from mlops_nb.core import load_params\nfrom mlops_nb.pipeline import section_params\n'
     'from mlops_nb.params import build_params\n'
     'def params(stage, section=None, **over):\n'   # the stage's typed parameters, as `mlops-nb run` builds them
     '    section = section or stage\n'
     '    values = {**section_params(load_params(), section), **over}\n'
     '    return build_params(stage, values, section=section, name=section.partition(".")[2] or None)\n')
STAGES = [  # (label, `mlops-nb run` arguments, entry-function code)
    ('labelstudio (digits)', ['labelstudio', '--section', 'labelstudio.digits', '-p', 'force=true'],
     P + "from mlops_nb.labelstudio import export_project\n"
         "export_project(params('labelstudio', 'labelstudio.digits', force=True))"),
    ('dataset (digits-benchmark)', ['dataset', '--section', 'benchmark.digits-benchmark', '-p', "cache_dir=''"],
     P + "from mlops_nb.dataset import build_dataset\n"
         "build_dataset(params('dataset', 'benchmark.digits-benchmark', cache_dir=''))"),
    ('dataset (digits)', ['dataset', '--section', 'dataset.digits', '-p', "cache_dir=''"],
     P + "from mlops_nb.dataset import build_dataset\nbuild_dataset(params('dataset', 'dataset.digits', cache_dir=''))"),
    ('train', ['train'], P + "from mlops_nb.train import train_model\ntrain_model(params('train'))"),
    ('evaluate', ['evaluate'], P + "from mlops_nb.evaluate import evaluate_model\nevaluate_model(params('evaluate'))"),
    ('compare', ['compare'], P + "from mlops_nb.compare import compare_models\ncompare_models(params('compare'))"),
]

def entry_rss(code:str, root:Path)->float:
    "Peak RSS (MB) of a fresh interpreter running `code`: VmHWM of its own address space (ru_maxrss would carry over the parent's)."
    probe = code + "\nprint('MAXRSS', next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')))"
    r = subprocess.run([sys.executable, '-c', probe], cwd=root, env=_demo.env(root), capture_output=True, text=True)
    if r.returncode: raise SystemExit(f'entry function failed:\n{r.stderr[-3000:]}')
    return int(r.stdout.rsplit('MAXRSS', 1)[1].split()[0])/1024   # KiB on Linux

def tree_rss(cmd:list, root:Path, every:float=0.02)->tuple[float, float, float]:
    """(peak of CLI RSS + its largest descendant's RSS, peak RSS of that descendant (the kernel), wall seconds), MB.
    Not the sum over every descendant: a process the kernel forks (e.g. `git` via subprocess) shows the kernel's whole RSS
    until it execs, and would count those shared pages twice."""
    import psutil
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=root, env=_demo.env(root), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    ps,peak,child_peak = psutil.Process(proc.pid),0,0
    while proc.poll() is None:
        try: kids = ps.children(recursive=True)
        except psutil.Error: kids = []
        rss = []
        for p in [ps, *kids]:
            try: rss.append(p.memory_info().rss)
            except psutil.Error: rss.append(0)
        big = max(rss[1:], default=0)
        peak,child_peak = max(peak, rss[0] + big),max(child_peak, big)
        time.sleep(every)
    out = proc.stdout.read().decode(errors='replace')
    if proc.returncode: raise SystemExit(f'{" ".join(cmd)} failed:\n{out[-3000:]}')
    return peak/2**20, child_peak/2**20, time.perf_counter() - t

def main():
    tmp = Path(tempfile.mkdtemp(prefix='bench-memory-'))
    cli = str(_demo.BIN/'mlops-nb')
    try:
        root = _demo.make_project(tmp/'demo')
        rows = []
        with _demo.labelstudio(root):
            entry_rss(STAGES[0][2].replace("'labelstudio.digits'", "'labelstudio.digits-benchmark'"), root)   # benchmark export
            bare = entry_rss('pass', root)
            rows.append(row('bare python -c pass', bare, 'MB'))
            for label,args,code in STAGES:
                fn = entry_rss(code, root)
                if label == 'dataset (digits-benchmark)':   # same stage and size as dataset (digits): its entry run makes the input
                    rows.append(row(f'{label}: entry function', fn, 'MB')); continue
                tree,kernel,secs = tree_rss([cli, 'run', *args], root)
                print(f'{label}: entry {fn:.0f} MB, mlops-nb run {tree:.0f} MB (kernel {kernel:.0f} MB, {secs:.1f}s)', flush=True)
                rows += [row(f'{label}: entry function', fn, 'MB'),
                         row(f'{label}: mlops-nb run (CLI + kernel)', tree, 'MB'),
                         row(f'{label}: of which the kernel', kernel, 'MB')]
        record('memory', rows, n_pool=_demo.N_POOL, n_bench=_demo.N_BENCH, train={'size': 16, 'epochs': 1},
               note='entry: VmHWM of a fresh python -c; mlops-nb run: peak of CLI RSS + kernel RSS (largest descendant), polled every 20 ms')
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

if __name__ == '__main__': main()
