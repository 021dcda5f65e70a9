"""deploy/nginx/site.conf run by Debian's nginx in front of a test deployment.

The shipped file is used as it is, except for the values a server changes anyway: the
port it listens on, the two upstream addresses and the static root. Each replacement
must match exactly once, so the test breaks if the shipped file drifts from this.
"""

from pathlib import Path

from tools.processes import REPO, Process, wait_for_port

SHIPPED = REPO / "deploy" / "nginx" / "site.conf"

# What Debian's /etc/nginx/nginx.conf gives an included site, with every path in the prefix.
MAIN_CONF = """\
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{
    worker_connections 1024;
}}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    sendfile on;
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/tmp/client_body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    include {prefix}/site.conf;
}}
"""


def render_site_conf(*, port: int, daphne: str, gunicorn: str, static_root: Path) -> str:
    text = SHIPPED.read_text()
    replacements = {
        "listen 80;": f"listen 127.0.0.1:{port};",
        "server 127.0.0.1:8001;": f"server {daphne};",
        "server 127.0.0.1:8002;": f"server {gunicorn};",
        "alias /srv/site/staticfiles/;": f"alias {static_root}/;",
    }
    for shipped, rendered in replacements.items():
        assert text.count(shipped) == 1, f"deploy/nginx/site.conf should contain {shipped!r} once"
        text = text.replace(shipped, rendered)
    return text


class Nginx:
    """nginx as a child process (daemon off) with its own prefix: config, pid, logs, temp files."""

    def __init__(self, prefix: Path, *, port: int, daphne: str, gunicorn: str, static_root: Path, binary: str):
        self.prefix = prefix
        self.port = port
        self.binary = binary
        self.site_conf = render_site_conf(port=port, daphne=daphne, gunicorn=gunicorn, static_root=static_root)
        self.process = None

    def start(self, env: dict) -> "Nginx":
        (self.prefix / "tmp").mkdir(parents=True, exist_ok=True)
        (self.prefix / "site.conf").write_text(self.site_conf)
        conf = self.prefix / "nginx.conf"
        conf.write_text(MAIN_CONF.format(prefix=self.prefix))
        args = [self.binary, "-p", str(self.prefix), "-c", str(conf), "-e", str(self.prefix / "error.log")]
        self.process = Process("nginx", [*args, "-g", "daemon off;"], env=env, log_dir=self.prefix)
        wait_for_port(self.port, process=self.process)
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def logs(self) -> str:
        error_log = self.prefix / "error.log"
        text = error_log.read_text(errors="replace") if error_log.exists() else ""
        return "\n".join(text.splitlines()[-20:])
