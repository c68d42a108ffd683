//! Real front servers started by the tests: nginx, lighttpd, Apache and HAProxy, each from a
//! config in a temp dir, on loopback ports. A missing peer fails the test (`scripts/test.sh`
//! installs them).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A peer process, stopped on drop; its log is printed when a test fails.
pub struct Peer {
    child: Child,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    log: PathBuf,
}

impl Peer {
    fn start(mut cmd: Command, dir: tempfile::TempDir, port: u16, log: PathBuf) -> Peer {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("stderr.log")).expect("log"))
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {cmd:?} (run scripts/test.sh to install it): {e}")
            });
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut peer = Peer {
            child,
            addr,
            dir,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(addr).is_err() {
            if let Ok(Some(status)) = peer.child.try_wait() {
                panic!("{cmd:?} exited with {status}:\n{}", peer.logs());
            }
            assert!(
                Instant::now() < deadline,
                "{cmd:?} did not listen:\n{}",
                peer.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        peer
    }

    /// What the peer logged.
    pub fn logs(&self) -> String {
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        format!(
            "{}{}",
            read(&self.log),
            read(&self.dir.path().join("stderr.log"))
        )
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- peer logs ---\n{}", self.logs());
        }
    }
}

/// nginx in the foreground, one process. `server` is the body of its `server {}` block (the
/// `listen` line is added); `http` goes into the `http {}` block. The stock `fastcgi_params`,
/// `scgi_params` and `uwsgi_params` are copied next to the config, so `include
/// fastcgi_params;` works as it does in /etc/nginx.
pub fn nginx(http: &str, server: &str) -> Peer {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path().display().to_string();
    for params in ["fastcgi_params", "scgi_params", "uwsgi_params"] {
        std::fs::copy(
            Path::new("/etc/nginx").join(params),
            dir.path().join(params),
        )
        .unwrap_or_else(|e| {
            panic!("/etc/nginx/{params} (is nginx installed? run scripts/test.sh): {e}")
        });
    }
    let port = free_port();
    let conf = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\nerror_log {d}/error.log info;\npid {d}/nginx.pid;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n  access_log off;\n  client_max_body_size 50m;\n\
         client_body_temp_path {d}/client_body;\n  fastcgi_temp_path {d}/fastcgi;\n  scgi_temp_path {d}/scgi;\n\
         proxy_temp_path {d}/proxy;\n  uwsgi_temp_path {d}/uwsgi;\n{http}\n\
         server {{\n    listen 127.0.0.1:{port};\n{server}\n  }}\n}}\n"
    );
    std::fs::write(dir.path().join("nginx.conf"), conf).expect("write nginx.conf");
    let mut cmd = Command::new("nginx");
    cmd.args([
        "-e",
        &format!("{d}/error.log"),
        "-p",
        &d,
        "-c",
        &format!("{d}/nginx.conf"),
    ]);
    let log = dir.path().join("error.log");
    Peer::start(cmd, dir, port, log)
}

/// lighttpd in the foreground; `conf` is appended to a minimal config that listens on the
/// returned peer's port.
pub fn lighttpd(conf: &str) -> Peer {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path().display().to_string();
    let port = free_port();
    std::fs::create_dir_all(dir.path().join("www")).expect("docroot");
    let full = format!(
        "server.document-root = \"{d}/www\"\nserver.bind = \"127.0.0.1\"\nserver.port = {port}\n\
         server.errorlog = \"{d}/error.log\"\nserver.max-request-size = 51200\n{conf}\n"
    );
    std::fs::write(dir.path().join("lighttpd.conf"), full).expect("write lighttpd.conf");
    let mut cmd = Command::new("lighttpd");
    cmd.args(["-D", "-f", &format!("{d}/lighttpd.conf")]);
    let log = dir.path().join("error.log");
    Peer::start(cmd, dir, port, log)
}

/// Apache httpd in the foreground with the event MPM; `conf` is appended to a minimal config
/// that loads `modules` and listens on the returned peer's port. As root, Apache runs its
/// workers (and CGI scripts) as www-data: the temp dir is made readable for them.
pub fn apache(modules: &[&str], conf: &str) -> Peer {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path().display().to_string();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let port = free_port();
    let mut load = String::new();
    for m in ["mpm_event", "authz_core"].iter().chain(modules) {
        load.push_str(&format!(
            "LoadModule {m}_module /usr/lib/apache2/modules/mod_{m}.so\n"
        ));
    }
    let full = format!(
        "ServerRoot \"{d}\"\nServerName localhost\nDefaultRuntimeDir \"{d}\"\nPidFile \"{d}/httpd.pid\"\n\
         Listen 127.0.0.1:{port}\nErrorLog \"{d}/error.log\"\nLogLevel info\nUser www-data\nGroup www-data\n\
         {load}{conf}\n"
    );
    std::fs::write(dir.path().join("httpd.conf"), full).expect("write httpd.conf");
    let mut cmd = Command::new("apache2");
    cmd.args(["-DFOREGROUND", "-f", &format!("{d}/httpd.conf")]);
    let log = dir.path().join("error.log");
    Peer::start(cmd, dir, port, log)
}

/// HAProxy in the foreground (`-db`), logging to stderr. `conf` holds the sections after
/// `global` and `defaults` (an `fcgi-app` and a `backend gatewayd`); a frontend on the returned
/// peer's port runs the `frontend` lines (`http-request` rules), then sends everything to
/// `backend gatewayd`. Timeouts are short: no test waits long. 2.6 counts `normalize-uri`
/// experimental, so experimental directives are allowed.
pub fn haproxy(frontend: &str, conf: &str) -> Peer {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path().display().to_string();
    let port = free_port();
    let full = format!(
        "global\n  log stderr format raw local0 info\n  expose-experimental-directives\n\n\
         defaults\n  mode http\n  log global\n  option httplog\n  timeout connect 2s\n\
         timeout client 10s\n  timeout server 10s\n\n\
         frontend front\n  bind 127.0.0.1:{port}\n{frontend}\n  default_backend gatewayd\n\n{conf}\n"
    );
    std::fs::write(dir.path().join("haproxy.cfg"), full).expect("write haproxy.cfg");
    let mut cmd = Command::new("haproxy");
    cmd.args(["-db", "-f", &format!("{d}/haproxy.cfg")]);
    let log = dir.path().join("haproxy.log");
    Peer::start(cmd, dir, port, log)
}

/// A cgi-bin under `dir` holding the wrapper `gw` that runs gatewayd as a CGI program on
/// `config` (written next to it): what an operator puts in a CGI host's script directory.
/// Everything is readable by www-data, as whom Apache runs scripts.
pub fn cgi_bin(dir: &Path, config: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = |p: &Path, m: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).expect("chmod")
    };
    mode(dir, 0o755);
    let conf = dir.join("cgi.toml");
    std::fs::write(&conf, config).expect("write cgi.toml");
    mode(&conf, 0o644);
    let bin = dir.join("cgi-bin");
    std::fs::create_dir_all(&bin).expect("cgi-bin");
    mode(&bin, 0o755);
    let wrapper = bin.join("gw");
    let script = format!(
        "#!/bin/sh\nGATEWAYD_CONFIG={} exec {}\n",
        conf.display(),
        super::gatewayd_bin().display()
    );
    std::fs::write(&wrapper, script).expect("write wrapper");
    mode(&wrapper, 0o755);
    bin
}
