"""A real HTTP S3 endpoint for tests: moto's standalone server (`moto[server]`) on 127.0.0.1.

Session fixture `s3_endpoint` starts ONE `ThreadedMotoServer` on a free loopback port and yields an
`S3Endpoint` with:
  .url   -> 'http://127.0.0.1:PORT'
  .env   -> the standard AWS variables pointing boto3 (and DVC's s3fs) at it: AWS_ACCESS_KEY_ID,
            AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION, AWS_ENDPOINT_URL (+ AWS_EC2_METADATA_DISABLED)
  .make_bucket(name) -> create a bucket (idempotent), returns its name
  .client() -> a boto3 S3 client on the endpoint
Function fixture `s3_env` sets `.env` in `os.environ` with monkeypatch (undone after the test) and
yields the same endpoint. Tests use their own bucket names, so they never see each other's objects.
Code under test must read credentials and the endpoint from these variables only.
"""
import logging, os, socket
from dataclasses import dataclass, field
import pytest
from fixtures_labelstudio import free_port

@dataclass
class S3Endpoint:
    url:str
    env:dict = field(default_factory=dict)

    def client(self):
        import boto3
        return boto3.client('s3', endpoint_url=self.url, region_name=self.env['AWS_DEFAULT_REGION'],
                            aws_access_key_id=self.env['AWS_ACCESS_KEY_ID'],
                            aws_secret_access_key=self.env['AWS_SECRET_ACCESS_KEY'])

    def make_bucket(self, name:str)->str:
        c = self.client()
        try: c.create_bucket(Bucket=name)
        except c.exceptions.BucketAlreadyOwnedByYou: pass
        return name

@pytest.fixture(scope='session')
def s3_endpoint():
    "moto's standalone S3 server over HTTP on 127.0.0.1 (one per session)."
    from moto.server import ThreadedMotoServer
    logging.getLogger('werkzeug').setLevel(logging.WARNING)  # one access-log line per request otherwise
    port = free_port()
    server = ThreadedMotoServer(ip_address='127.0.0.1', port=port, verbose=False)
    server.start()
    url = f'http://127.0.0.1:{port}'
    env = {'AWS_ACCESS_KEY_ID': 'testing-access-key', 'AWS_SECRET_ACCESS_KEY': 'testing-secret-key',
           'AWS_DEFAULT_REGION': 'us-east-1', 'AWS_ENDPOINT_URL': url, 'AWS_EC2_METADATA_DISABLED': 'true'}
    try: yield S3Endpoint(url, env)
    finally: server.stop()

@pytest.fixture
def s3_env(s3_endpoint, monkeypatch):
    "The S3 endpoint with its AWS variables set in this test's environment (and no profile/config files)."
    for k in ('AWS_PROFILE', 'AWS_SESSION_TOKEN', 'AWS_CONFIG_FILE', 'AWS_SHARED_CREDENTIALS_FILE'):
        monkeypatch.delenv(k, raising=False)
    for k,v in s3_endpoint.env.items(): monkeypatch.setenv(k, v)
    yield s3_endpoint
