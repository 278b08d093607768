"""Shared bits of the bench scripts: machine description, result recording, table printing.

Each bench script measures its figures side by side in one run (ratios, not absolute times) and calls
`record(key, rows)`; rows are dicts with name, value, unit, target (text) and ok (bool or None).
"""
import json, os, platform, resource, subprocess, sys, time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH/'results.json'

def machine()->dict:
    import multiprocessing
    return {'cpus': multiprocessing.cpu_count(), 'python': platform.python_version(),
            'platform': platform.platform(), 'date': time.strftime('%Y-%m-%d'),
            'load_avg': [round(x, 2) for x in os.getloadavg()]}  # 1/5/15 min when the figures were recorded (shared machine)

def row(name, value, unit='', target='', ok=None)->dict:
    return {'name': name, 'value': round(value, 3) if isinstance(value, float) else value, 'unit': unit, 'target': target, 'ok': ok}

def record(key:str, rows:list[dict], **extra):
    "Merge `rows` under `key` into bench/results.json (atomically) and print them."
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    data[key] = {'machine': machine(), 'rows': rows, **extra}
    tmp = RESULTS.with_suffix('.tmp'); tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + '\n'); tmp.replace(RESULTS)
    print_table(key, rows)

def print_table(key, rows):
    print(f'\n== {key} ==')
    for r in rows:
        mark = {True: 'ok', False: 'MISS', None: ''}[r.get('ok')]
        print(f"  {r['name']:<52} {str(r['value']):>10} {r.get('unit',''):<8} target {r.get('target') or '-':<16} {mark}")

def timed(cmd, env=None, cwd=None)->float:
    "Wall seconds of one command (fails loudly)."
    t = time.perf_counter()
    subprocess.run(cmd, check=True, env={**os.environ, **(env or {})}, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t

def timed_cpu(cmd, env=None, cwd=None)->tuple[float, float]:
    "(wall seconds, CPU seconds) of one command, CPU = user + system of it and every descendant it waited for (fails loudly)."
    def cpu(): r = resource.getrusage(resource.RUSAGE_CHILDREN); return r.ru_utime + r.ru_stime
    c,t = cpu(),time.perf_counter()
    subprocess.run(cmd, check=True, env={**os.environ, **(env or {})}, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t, cpu() - c

def best_of(n, f)->float: return min(f() for _ in range(n))
