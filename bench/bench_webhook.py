"""Webhook receiver: how many events per second `mlops-nb webhook serve` accepts while a refresh is running (beside the
same figure with the receiver idle), how long it takes to answer one, and the time from an annotation in Label Studio
to the start of its refresh (target: the quiet window + 1 s).

On the small demo (see _demo.py: local Label Studio seeded with 60 + 30 tasks): one `mlops-nb refresh` first, then the
receiver (`--action local`, default quiet window 5 s) registered on the pool project with `connect-webhook`. One real
annotation is created; /health is polled every 20 ms until its refresh is running. While that refresh runs, 4 client
threads post Label Studio events as fast as they can for up to 10 s.

Usage: python bench/bench_webhook.py
"""
import json, os, shutil, subprocess, sys, tempfile, threading, time, uuid
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from _common import row, record
import _demo

QUIET = 5.0
SECRET = 'bench-' + uuid.uuid4().hex

def cli(root, *args, env):
    r = subprocess.run([str(_demo.BIN/'mlops-nb'), *args], cwd=root, env=env, capture_output=True, text=True)
    if r.returncode: raise SystemExit(f'mlops-nb {" ".join(args)} failed:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}')
    return r.stdout

def flood(url:str, event:dict, seconds:float, stop, threads:int=4)->tuple[int, list[float]]:
    "Post `event` from `threads` clients until `seconds` pass or `stop()`; (2xx answers, answer times in s)."
    import httpx
    counts,times,end = [0]*threads,[],time.perf_counter() + seconds
    body,headers = json.dumps(event).encode(),{'X-Mlops-Webhook-Secret': SECRET, 'Content-Type': 'application/json'}
    def worker(i):
        with httpx.Client(timeout=5) as http:
            while time.perf_counter() < end and not stop():
                t = time.perf_counter()
                if http.post(url, content=body, headers=headers).status_code < 300: counts[i] += 1
                times.append(time.perf_counter() - t)
    ts = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    t0 = time.perf_counter()
    for t in ts: t.start()
    for t in ts: t.join()
    return sum(counts) / (time.perf_counter() - t0), sorted(times)

def annotate_one(ls_url:str, token:str, project:str)->float:
    "Annotate one unannotated task of `project` (one API call, one webhook); the time the call returned."
    import httpx
    with httpx.Client(base_url=ls_url, headers={'Authorization': f'Token {token}'}, timeout=60) as h:
        projects = h.get('/api/projects/', params={'page_size': 100}).json()['results']
        pid = next(p['id'] for p in projects if p['title'] == project)
        tasks = h.get('/api/tasks', params={'project': pid, 'page_size': 500}).json()['tasks']
        task = next(t for t in tasks if not t['total_annotations'])
        h.post(f'/api/tasks/{task["id"]}/annotations/', json={'result': [{'from_name': 'label', 'to_name': 'image',
               'type': 'choices', 'value': {'choices': ['4']}}]}).raise_for_status()
    return time.perf_counter()

def health(url):
    import httpx
    return httpx.get(f'{url}/health', timeout=5).json()

def main():
    tmp = Path(tempfile.mkdtemp(prefix='bench-webhook-'))
    root = _demo.make_project(tmp/'demo')
    port = _demo.free_port()
    url = f'http://127.0.0.1:{port}'
    with _demo.labelstudio(root) as (info, times):
        env = {**_demo.env(root), 'MLOPS_WEBHOOK_SECRET': SECRET}
        t = time.perf_counter()
        cli(root, 'refresh', env=env)
        first = time.perf_counter() - t
        log = open(tmp/'webhook.log', 'w')
        cmd = [str(_demo.BIN/'mlops-nb'), 'webhook', 'serve', '--port', str(port), '--action', 'local']
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            while health_running(url, default=None) is None: time.sleep(0.1)  # until it answers
            cli(root, 'labelstudio', 'connect-webhook', '--url', url + '/', '--project', 'digits', env=env)
            pool = {'id': 0, 'title': 'digits'}
            idle_rate,idle_times = flood(url + '/', {'action': 'ANNOTATION_UPDATED', 'project': pool}, 3, lambda: False)
            while health(url)['running'] or health(url)['pending']: time.sleep(0.2)   # the refresh the flood queued
            t_ann = annotate_one(info['url'], os.environ['LABEL_STUDIO_API_KEY'], 'digits')
            while not health(url)['running']: time.sleep(0.02)
            latency = time.perf_counter() - t_ann
            done = threading.Event()
            def watch():
                while health_running(url): time.sleep(0.1)
                done.set()
            threading.Thread(target=watch, daemon=True).start()
            busy_rate,busy_times = flood(url + '/', {'action': 'ANNOTATION_UPDATED', 'project': pool}, 10, done.is_set)
            p99 = busy_times[int(0.99 * (len(busy_times) - 1))] * 1000
            end = time.time() + 180
            while (health_running(url) or health(url)['pending']) and time.time() < end: time.sleep(0.5)
        finally:
            proc.terminate()
            proc.wait(10)
            log.close()
    print((tmp/'webhook.log').read_text()[-1500:])
    shutil.rmtree(tmp, ignore_errors=True)
    record('webhook', [
        row('first mlops-nb refresh (60 + 30 tasks)', first, 's'),
        row('events accepted, receiver idle', round(idle_rate), '/s'),
        row('events accepted while a refresh runs', round(busy_rate), '/s', '>= 100 /s', busy_rate >= 100),
        row('answer time p99 while a refresh runs', p99, 'ms', "< 1000 ms (Label Studio's timeout)", p99 < 1000),
        row(f'annotation -> refresh start (quiet window {QUIET:g} s)', latency, 's', f'<= {QUIET + 1:g} s',
            latency <= QUIET + 1),
    ])

def health_running(url, default=False)->bool|None:
    "Whether the receiver runs a refresh now (`default` when it does not answer)."
    try: return health(url)['running']
    except Exception: return default

if __name__ == '__main__': main()
