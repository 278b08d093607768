"""A loopback stand-in for the GitHub REST API (GitHub itself is unreachable here): it records every request and keeps
issue comments, pull requests and workflow dispatches in memory, checking the token on each call."""
import json, re, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

class FakeGitHub:
    "Start with `FakeGitHub(token)`; `url` is the API base; `requests` lists (method, path, body, headers)."
    def __init__(self, token:str, repo:str='acme/models', fail_first:int=0):
        self.token,self.repo,self.requests,self.fail_first = token,repo,[],fail_first
        self.comments,self.pulls,self.dispatches,self.events = {},[],[],[]
        self.lock = threading.Lock()
        fake = self
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a): pass
            def _send(self, code, obj=None):
                body = b'' if obj is None else json.dumps(obj).encode()
                self.send_response(code); self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(body))); self.end_headers(); self.wfile.write(body)
            def _handle(self):
                n = int(self.headers.get('Content-Length') or 0)
                body = json.loads(self.rfile.read(n) or b'null')
                u = urlparse(self.path)
                with fake.lock:
                    fake.requests.append((self.command, u.path, body, dict(self.headers)))
                    if self.headers.get('Authorization') not in (f'token {fake.token}', f'Bearer {fake.token}'):
                        return self._send(401, {'message': 'Bad credentials'})
                    if fake.fail_first > 0:
                        fake.fail_first -= 1
                        return self._send(502, {'message': 'bad gateway'})
                    code,obj = fake.route(self.command, u.path, parse_qs(u.query), body)
                self._send(code, obj)
            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle
        self.server = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.url = f'http://127.0.0.1:{self.server.server_address[1]}'
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def route(self, verb, path, query, body):
        prefix = f'/repos/{self.repo}'
        if not path.startswith(prefix + '/'): return 404, {'message': 'Not Found'}
        path = path[len(prefix):]
        if m := re.fullmatch(r'/issues/(\d+)/comments', path):
            cs = self.comments.setdefault(int(m.group(1)), [])
            if verb == 'POST':
                c = {'id': 1000 + sum(map(len, self.comments.values())), 'body': body['body']}
                cs.append(c); return 201, c
            page,per = int(query.get('page', ['1'])[0]),int(query.get('per_page', ['30'])[0])
            return 200, cs[(page-1)*per:page*per]
        if (m := re.fullmatch(r'/issues/comments/(\d+)', path)) and verb == 'PATCH':
            c = next(c for cs in self.comments.values() for c in cs if c['id'] == int(m.group(1)))
            c['body'] = body['body']; return 200, c
        if path == '/dispatches' and verb == 'POST':
            self.events.append(body); return 204, None
        if (m := re.fullmatch(r'/actions/workflows/([\w.-]+)/dispatches', path)) and verb == 'POST':
            self.dispatches.append((m.group(1), body)); return 204, None
        if path == '/pulls' and verb == 'GET':
            head = query.get('head', [''])[0]
            return 200, [p for p in self.pulls if p['state'] == 'open' and (not head or f'{self.repo.split("/")[0]}:{p["head"]}' == head)]
        if path == '/pulls' and verb == 'POST':
            p = {'number': len(self.pulls) + 1, 'state': 'open', 'head': body['head'], 'base': body['base'],
                 'title': body.get('title'), 'body': body.get('body'), 'html_url': f'https://github.invalid/pr/{len(self.pulls)+1}'}
            self.pulls.append(p); return 201, p
        if (m := re.fullmatch(r'/pulls/(\d+)', path)) and verb == 'PATCH':
            p = self.pulls[int(m.group(1)) - 1]; p.update({k: v for k,v in body.items() if k in ('title', 'body')}); return 200, p
        return 404, {'message': 'Not Found'}

    def calls(self, verb=None):
        return [(m, p) for m,p,_,_ in self.requests if verb is None or m == verb]

    def records(self, verb=None)->list[dict]:
        "The requests as dicts: method, path, body, auth (the Authorization header)."
        return [{'method': m, 'path': p, 'body': b, 'auth': h.get('Authorization')} for m,p,b,h in self.requests
                if verb is None or m == verb]

    def close(self): self.server.shutdown(); self.server.server_close()
