"""Run every benchmark (bench/bench_*.py) one after another, then print all figures next to their targets.

Usage: python bench/run.py [name ...]   e.g. `python bench/run.py cli overhead`
Each script writes its key into bench/results.json; bench/README.md records the latest figures.
"""
import json, subprocess, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from _common import BENCH, RESULTS, print_table

def main(names):
    scripts = sorted(BENCH.glob('bench_*.py'))
    if names: scripts = [s for s in scripts if s.stem.removeprefix('bench_') in names]
    t0,failed = time.time(),[]
    for s in scripts:
        print(f'--- {s.name}', flush=True)
        if subprocess.run([sys.executable, str(s)]).returncode: failed.append(s.name)
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    print(f'\n===== all figures ({time.time()-t0:.0f}s) =====')
    for key,v in data.items(): print_table(key, v['rows'])
    if failed: print(f'\nFAILED: {", ".join(failed)}'); return 1
    return 0

if __name__ == '__main__': sys.exit(main(sys.argv[1:]))
