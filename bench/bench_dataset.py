"""Dataset stage: fetching N images behind auth from a local Label Studio, concurrently (bounded thread pool)
vs sequentially (workers=1), in the same run, plus the HTTP request count of a warm rebuild (target 0).

Usage: python bench/bench_dataset.py [N] [WORKERS]
Uses LABEL_STUDIO_URL + LABEL_STUDIO_API_KEY when set (a server you started, e.g. `mlops-nb labelstudio serve`),
else starts a throwaway server like the tests do (needs MLOPS_LABELSTUDIO_VENV or `label-studio` on PATH).
"""
import json, os, secrets, shutil, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from _common import ROOT, row, record
sys.path.insert(0, str(ROOT/'tests'))

def count_requests():
    "Count every request the `requests` library sends (what the dataset stage uses)."
    from requests.adapters import HTTPAdapter
    calls,orig = [],HTTPAdapter.send
    def send(self, request, *a, **kw):
        calls.append(request.url); return orig(self, request, *a, **kw)
    HTTPAdapter.send = send
    return calls

def server_cpu_clock(proc):
    "CPU seconds used so far by the server we started (None for a server started elsewhere)."
    if proc is None: return lambda: None
    import psutil
    ps = psutil.Process(proc.pid)
    def clock():
        return sum(sum(p.cpu_times()[:2]) for p in [ps, *ps.children(recursive=True)])
    return clock

LATENCY = 0.03   # seconds a plain server waits before answering: about the Label Studio dev server's CPU per image request

def plain_server(files:list[bytes], latency:float=LATENCY):
    "A plain threaded HTTP server on loopback answering GET /img/<i>.png after a fixed delay (no CPU spent waiting)."
    import threading
    from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
    class Handler(BaseHTTPRequestHandler):
        protocol_version = 'HTTP/1.1'
        disable_nagle_algorithm = True   # headers and body go out in two writes: avoid the 40 ms delayed-ACK stall
        def do_GET(self):
            time.sleep(latency)
            try: body = files[int(self.path.rsplit('/', 1)[1].split('.')[0])]
            except (ValueError, IndexError): self.send_error(404); return
            self.send_response(200); self.send_header('Content-Type', 'image/png'); self.send_header('Content-Length', str(len(body)))
            self.end_headers(); self.wfile.write(body)
        def log_message(self, *a): pass
    srv = ThreadingHTTPServer(('127.0.0.1', 0), Handler); srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv

def plain_server_rows(tmp:Path, n:int, workers:int, calls:list)->list[dict]:
    "Concurrent vs sequential cold builds against a plain server with a fixed per-request latency: the client's own concurrency."
    from mlops_nb.core import digit_png, dumps_json
    from mlops_nb.dataset import build_dataset
    from mlops_nb.params import DatasetParams
    pngs = [digit_png(i % 1797, size=64) for i in range(n)]
    srv = plain_server([p for p,_ in pngs])
    host = f'127.0.0.1:{srv.server_address[1]}'
    try:
        tasks = [{'id': i+1, 'data': {'image': f'http://{host}/img/{i}.png'},
                  'annotations': [{'id': i+1, 'result': [{'from_name': 'label', 'to_name': 'image', 'type': 'choices', 'value': {'choices': [label]}}],
                                   'was_cancelled': False, 'ground_truth': False, 'created_at': '2026-01-01T00:00:00Z', 'updated_at': '2026-01-01T00:00:00Z'}]}
                 for i,(_,label) in enumerate(pngs)]
        export = tmp/'plain-export.json'; export.write_text(dumps_json(tasks))
        def build(w, cache):
            shutil.rmtree(cache, ignore_errors=True); calls.clear()
            t = time.perf_counter()
            res = build_dataset(DatasetParams(export=str(export), out=str(tmp/'plain-ds'), workers=w, cache_dir=str(cache), allowed_hosts=[host]))
            dt = time.perf_counter() - t
            assert res.n_images == n and len(calls) == n, (res.n_images, len(calls))
            return dt
        seq,conc = [],[]
        for _ in range(2):
            seq.append(build(1, tmp/'p-seq')); conc.append(build(workers, tmp/'p-conc'))
        seq,conc = min(seq),min(conc)
        return [row(f'plain threaded server, {LATENCY*1000:.0f} ms/request: sequential', seq, 's'),
                row(f'plain threaded server, {LATENCY*1000:.0f} ms/request: concurrent (workers={workers})', conc, 's'),
                row('plain server: concurrent speedup (client concurrency)', seq/conc, 'x', '>= 3x', seq/conc >= 3),
                row(f'plain server: ideal speedup (min(workers, n))', float(min(workers, n)), 'x')]
    finally:
        srv.shutdown(); srv.server_close()

def main(n:int=120, workers:int=8):
    import fixtures_labelstudio as F
    from mlops_nb.core import digit_png, dumps_json
    from mlops_nb.dataset import build_dataset
    from mlops_nb.params import DatasetParams
    os.environ['MLOPS_PROGRESS'] = 'plain'
    tmp = Path(tempfile.mkdtemp(prefix='bench-dataset-'))
    proc = None
    try:
        if os.environ.get('LABEL_STUDIO_URL') and os.environ.get('LABEL_STUDIO_API_KEY'):
            url,token = os.environ['LABEL_STUDIO_URL'].rstrip('/'),os.environ['LABEL_STUDIO_API_KEY']
            where = 'existing server'
        else:
            token = secrets.token_hex(20)
            t0 = time.time(); proc,url,_ = F.start_server(tmp/'ls', token); where = f'throwaway server (started in {time.time()-t0:.0f}s)'
            os.environ.update(LABEL_STUDIO_URL=url, LABEL_STUDIO_API_KEY=token)
        srv = F.LabelStudioServer(url=url, token=token, proc=proc, data_dir=tmp, log=tmp/'log')
        p = srv.make_project(f'bench-dataset-{secrets.token_hex(3)}')
        files = {f'b{i:04d}.png': digit_png(i % 1797, size=64) for i in range(n)}
        urls = srv.upload(p.id, {k: png for k,(png,_) in files.items()})
        srv.import_tasks(p.id, [{'data': {'image': u}, 'annotations': [label]} for u,(_,label) in zip(urls, files.values())])
        with srv.http() as h:
            r = h.get(f'/api/projects/{p.id}/export', params={'exportType': 'JSON', 'download_all_tasks': 'true'}); r.raise_for_status()
        export = tmp/'export.json'; export.write_text(dumps_json(r.json()))
        print(f'{where}: {url}, {n} uploaded images', flush=True)
        calls = count_requests()
        server_cpu = server_cpu_clock(proc)
        cpu_per_image = []
        def build(w, cache):
            shutil.rmtree(cache, ignore_errors=True); calls.clear()
            c0,t = server_cpu(),time.perf_counter()
            res = build_dataset(DatasetParams(export=str(export), out=str(tmp/'ds'), workers=w, cache_dir=str(cache)))
            dt = time.perf_counter() - t
            if c0 is not None: cpu_per_image.append((server_cpu() - c0)/n)
            assert res.n_images == n and len(calls) == n, (res.n_images, len(calls))
            return dt
        build(workers, tmp/'warmup')                      # warm the server's caches and the OS page cache once
        seq,conc = [],[]
        for _ in range(2):                                # interleaved, best of 2 each
            seq.append(build(1, tmp/'c-seq')); conc.append(build(workers, tmp/'c-conc'))
        seq,conc = min(seq),min(conc)
        plain = plain_server_rows(tmp, n, workers, calls)
        calls.clear(); t = time.perf_counter()
        warm = build_dataset(DatasetParams(export=str(export), out=str(tmp/'ds'), workers=workers, cache_dir=str(tmp/'c-conc'))); warm_s = time.perf_counter() - t
        speedup = seq/conc
        cpu = min(cpu_per_image) if cpu_per_image else None
        extra = [] if cpu is None else [
            row('Label Studio server CPU per image request', cpu*1000, 'ms'),
            row('speedup ceiling: sequential time per image / server CPU per image', seq/n/cpu, 'x')]
        record('dataset', [
            row(f'cold build, {n} images, sequential (workers=1)', seq, 's'),
            row(f'cold build, {n} images, concurrent (workers={workers})', conc, 's'),
            row('concurrent speedup over sequential', speedup, 'x', '>= 3x', speedup >= 3),
            row('images per second, concurrent', n/conc, 'img/s'),
            *extra,
            row('warm rebuild (cache) wall time', warm_s, 's'),
            row('warm rebuild HTTP requests', len(calls), 'requests', '0', len(calls) == 0 and warm.requests == 0),
            *plain,
        ], n=n, workers=workers, server=where.split(' (')[0],
           note="Label Studio serves with Django's threaded dev server: one GIL-bound process, so its CPU per request caps throughput; "
             "the ceiling row is the best any client concurrency can reach against it on this machine; the plain-server rows "
             "fetch the same images from a threaded loopback server that waits a fixed time per request (no CPU), showing the "
             "client's own concurrency")
    finally:
        if proc is not None: F.stop_process(proc)
        shutil.rmtree(tmp, ignore_errors=True)

if __name__ == '__main__':
    main(*(int(a) for a in sys.argv[1:3]))
