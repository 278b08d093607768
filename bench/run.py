"""Run every benchmark (bench/bench_*.py) one after another, then print all figures next to their targets.

Usage: python bench/run.py [name ...]   e.g. `python bench/run.py cli overhead`
       python bench/run.py --md            print bench/results.json as the markdown tables of bench/README.md
Each script writes its key into bench/results.json; bench/README.md records the latest figures.
"""
import json, subprocess, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from _common import BENCH, RESULTS, print_table, record, row

def markdown(data:dict)->str:
    "The figures as markdown tables, one per benchmark, with the machine and load they were measured under."
    out = []
    for key,v in data.items():
        m = v['machine']
        load = '/'.join(str(x) for x in m.get('load_avg', [])) or 'not recorded'
        card = f"{v['gpu']}, torch {v['torch']}, " if 'gpu' in v else ''
        out += [f"### {key}", '', f"{m['date']}, {card}{m['cpus']} CPUs, Python {m['python']}, load average (1/5/15 min) {load}", '',
                '| figure | value | unit | target | |', '|---|---:|---|---|---|']
        for r in v['rows']:
            mark = {True: 'ok', False: '**miss**', None: ''}[r.get('ok')]
            out.append(f"| {r['name'].strip()} | {r['value']} | {r.get('unit', '')} | {r.get('target') or ''} | {mark} |")
        out.append('')
    return '\n'.join(out)

def main(names):
    if names == ['--md']:
        print(markdown(json.loads(RESULTS.read_text()))); return 0
    scripts = sorted(BENCH.glob('bench_*.py'))
    if names: scripts = [s for s in scripts if s.stem.removeprefix('bench_') in names]
    t0,failed = time.time(),[]
    per_script = {}
    for s in scripts:
        print(f'--- {s.name}', flush=True)
        t = time.time()
        if subprocess.run([sys.executable, str(s)]).returncode: failed.append(s.name)
        per_script[s] = time.time() - t
    secs = time.time() - t0
    if not names:
        record('total', [row('python bench/run.py, every benchmark', secs, 's', '< 600 s', secs < 600)],
               per_script={s.stem: round(t, 1) for s,t in per_script.items()})
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    print(f'\n===== all figures ({secs:.0f}s) =====')
    for key,v in data.items(): print_table(key, v['rows'])
    if failed: print(f'\nFAILED: {", ".join(failed)}'); return 1
    return 0

if __name__ == '__main__': sys.exit(main(sys.argv[1:]))
