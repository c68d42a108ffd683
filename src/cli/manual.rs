//! The man pages: `gatewayd(8)` from the clap definition of the command line, and
//! `gatewayd.toml(5)` from the table of config keys below, which `tests/man_pages.rs` holds to
//! the config schema itself (a key the schema takes and this table lacks fails it, and so does
//! a key documented here that the schema refuses). `gatewayd generate man DIR` writes both.

use clap::CommandFactory as _;
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, italic, roman};

use super::Cli;

/// One key of a config table.
#[derive(Debug)]
pub struct Key {
    /// The key, as written in the file.
    pub name: &'static str,
    /// What it takes: `duration`, `size`, `integer`, `string`...
    pub value: &'static str,
    /// Its default, as written in the file; `None` when required or unset by default.
    pub default: Option<&'static str>,
    /// What it does.
    pub doc: &'static str,
}

/// A config table (`[server]`...) or an app type's own keys.
#[derive(Debug)]
pub struct Table {
    /// The top-level key it lives under (`server`, `listen`, `apps`, `mount`), or for an app
    /// type, the type's name.
    pub name: &'static str,
    /// The header as written: `[server]`, `[[listen]]`, `type = "cgi"`.
    pub header: &'static str,
    /// What the table is for.
    pub doc: &'static str,
    /// Every key it takes, in the order the page lists them.
    pub keys: &'static [Key],
}

const fn key(
    name: &'static str,
    value: &'static str,
    default: Option<&'static str>,
    doc: &'static str,
) -> Key {
    Key {
        name,
        value,
        default,
        doc,
    }
}

/// The tables of the file, in the order the page lists them.
pub const TABLES: &[Table] = &[
    Table {
        name: "server",
        header: "[server]",
        doc: "Process-wide settings; every key is optional.",
        keys: &[
            key(
                "shutdown_timeout",
                "duration",
                Some("\"30s\""),
                "After SIGTERM or SIGINT: how long in-flight requests may finish before they are cancelled.",
            ),
            key(
                "max_body_size",
                "size",
                Some("\"100MiB\""),
                "The request body cap, also for chunked bodies; over it the client gets 413.",
            ),
            key(
                "header_read_timeout",
                "duration",
                Some("\"30s\""),
                "How long a client may take to send a request head (a slowloris guard).",
            ),
            key(
                "keepalive_timeout",
                "duration",
                Some("\"75s\""),
                "How long a kept-alive connection may wait for its next request.",
            ),
            key(
                "send_timeout",
                "duration",
                Some("\"60s\""),
                "The longest a write to a client may wait; past it the connection closes and its requests are cancelled.",
            ),
            key(
                "request_timeout",
                "duration",
                Some("\"60s\""),
                "The deadline of an app call; past it the call is cancelled and the client gets 504. An app's own request_timeout overrides it.",
            ),
            key(
                "workers",
                "integer",
                Some("0"),
                "Runtime threads; 0 means one per CPU core. Read at start, not on reload.",
            ),
            key(
                "processes",
                "integer",
                None,
                "Worker processes under a master process, as uWSGI's processes and gunicorn's workers: the master binds every listener once and builds no app; each worker is gatewayd started afresh on those sockets, builds its own apps (its own interpreter, for app types that embed one) and serves as one process does, the kernel spreading connections over them. 1 to 1024. A worker that dies is replaced (100 ms after, doubling up to 10 s while they keep dying); SIGHUP replaces the workers one by one; the status page totals every worker. Unset: one process, no master.",
            ),
            key(
                "body_buffer_budget",
                "size",
                Some("\"64MiB\""),
                "FastCGI: what all connections together may hold of unread request bodies; past it a connection stops reading its socket until bodies are read or freed.",
            ),
        ],
    },
    Table {
        name: "listen",
        header: "[[listen]]",
        doc: "One socket; as many as you like, all served at once.",
        keys: &[
            key(
                "protocol",
                "\"http\", \"fastcgi\", \"scgi\" or \"uwsgi\"",
                None,
                "Required. What the socket speaks: HTTP/1.1, FastCGI 1.0 (responder), SCGI or uwsgi (uWSGI's binary protocol, nginx uwsgi_pass).",
            ),
            key(
                "address",
                "string",
                None,
                "Required. host:port, [v6]:port, unix:/path, fd:N (a listening socket inherited on descriptor N) or systemd:NAME (a socket passed by systemd socket activation, by its FileDescriptorName). Port 0 picks a free port.",
            ),
            key(
                "socket_mode",
                "string",
                Some("\"0660\""),
                "Unix sockets only: the mode set after bind, whatever the umask.",
            ),
            key(
                "socket_owner",
                "string",
                None,
                "Unix sockets only: the owner set after bind (a user name or id).",
            ),
            key(
                "socket_group",
                "string",
                None,
                "Unix sockets only: the group set after bind (a group name or id).",
            ),
            key(
                "max_connections",
                "integer",
                Some("1024"),
                "Connections served at once; more wait in the kernel's backlog.",
            ),
            key(
                "max_body_size",
                "size",
                None,
                "Overrides [server] max_body_size for this listener.",
            ),
            key(
                "header_read_timeout",
                "duration",
                None,
                "Overrides [server] header_read_timeout for this listener.",
            ),
            key(
                "keepalive_timeout",
                "duration",
                None,
                "Overrides [server] keepalive_timeout for this listener.",
            ),
            key(
                "send_timeout",
                "duration",
                None,
                "Overrides [server] send_timeout for this listener.",
            ),
            key(
                "max_requests",
                "integer",
                Some("1"),
                "FastCGI only: requests at once on one connection (1 to 65535); above 1 the listener multiplexes.",
            ),
            key(
                "max_head_size",
                "size",
                Some("\"64KiB\""),
                "The largest request head: HTTP request line and headers, FastCGI params, SCGI header or uwsgi vars. Over it: 431.",
            ),
        ],
    },
    Table {
        name: "apps",
        header: "[apps.NAME]",
        doc: "An app instance called NAME. Its type key picks the app type (see APP TYPES); the other keys belong to the type, except these, which every app takes.",
        keys: &[
            key(
                "type",
                "string",
                None,
                "Required. The app type: one of the APP TYPES below, or one your own binary registers.",
            ),
            key(
                "request_timeout",
                "duration",
                None,
                "Overrides [server] request_timeout for this app.",
            ),
            key(
                "max_concurrency",
                "integer",
                Some("1024"),
                "Calls at once; beyond it the client gets 503 with Retry-After.",
            ),
        ],
    },
    Table {
        name: "mount",
        header: "[[mount]]",
        doc: "An app at a path prefix. Mounts match the longest prefix on whole path segments (/api matches /api/x, not /apix); no match answers 404.",
        keys: &[
            key(
                "path",
                "string",
                None,
                "Required. The prefix, / or /a/b; it becomes SCRIPT_NAME (empty for /) and the rest PATH_INFO.",
            ),
            key(
                "app",
                "string",
                None,
                "Required. The NAME of an [apps.NAME] table.",
            ),
            key(
                "lint",
                "boolean",
                Some("false"),
                "Check every request and response against the Lint rules.",
            ),
        ],
    },
];

/// The built-in app types and their own keys.
pub const APP_TYPES: &[Table] = &[
    Table {
        name: "cgi",
        header: "type = \"cgi\"",
        doc: "Hosts external CGI scripts, as fcgiwrap does, behind every gateway. The first PATH_INFO segment below the mount names the script in root.",
        keys: &[
            key(
                "root",
                "path",
                None,
                "Required. The directory that holds the scripts.",
            ),
            key(
                "timeout",
                "duration",
                Some("\"30s\""),
                "The script's whole life, from start to the end of its output; past it its process group is killed.",
            ),
            key(
                "pass_env",
                "array of strings",
                Some("[]"),
                "Variables of the daemon's own environment that scripts also get, e.g. [\"PATH\", \"LANG\"].",
            ),
            key(
                "pass_params",
                "array of strings",
                Some("[]"),
                "Variables a front server may pass through to scripts besides the CGI ones.",
            ),
            key(
                "max_scripts",
                "integer",
                Some("64"),
                "Scripts running at once; beyond it the client gets 503 with Retry-After.",
            ),
        ],
    },
    Table {
        name: "hello",
        header: "type = \"hello\"",
        doc: "A fixed body with no work per request, for benchmarks.",
        keys: &[
            key(
                "body",
                "string",
                Some("\"Hello, World!\\n\""),
                "The body of every response.",
            ),
            key(
                "content_type",
                "string",
                Some("\"text/plain\""),
                "Its Content-Type.",
            ),
        ],
    },
    Table {
        name: "httpbin",
        header: "type = \"httpbin\"",
        doc: "httpbin-compatible diagnostics (/get, /post, /status/CODE, /delay/S...), and /environ, which shows the exact CGI environ an app receives. No keys of its own. A test target: do not expose it publicly.",
        keys: &[],
    },
    Table {
        name: "ping",
        header: "type = \"ping\"",
        doc: "A health check that answers 200 without touching any other app.",
        keys: &[key(
            "response",
            "string",
            Some("\"pong\""),
            "The answer (a newline is added).",
        )],
    },
    Table {
        name: "status",
        header: "type = \"status\"",
        doc: "Live counters, as php-fpm's status page: JSON, or Prometheus text with ?format=prometheus or a path ending in /metrics. No keys of its own.",
        keys: &[],
    },
    Table {
        name: "wsgi",
        header: "type = \"wsgi\"",
        doc: "A Python WSGI app (PEP 3333), in CPython embedded in the daemon: gatewayd execs gatewayd-wsgi, found beside it, when the config names a wsgi app at start-up, so gatewayd itself never loads libpython. The module is imported when the config is loaded (also by gatewayd check, which prints the traceback of a failed import). Paths are relative to the config file.",
        keys: &[
            key(
                "module",
                "string",
                None,
                "Required. \"package.module:callable\"; the callable defaults to application.",
            ),
            key(
                "python_path",
                "array of paths",
                Some("[]"),
                "Directories put first on sys.path, in order.",
            ),
            key(
                "virtualenv",
                "path",
                None,
                "A virtualenv of the same Python version whose site-packages come before the system's.",
            ),
            key(
                "threads",
                "integer",
                Some("8"),
                "Python threads of the app in each process (1 to 1024); the GIL is released whenever one waits.",
            ),
        ],
    },
];

/// The config the package installs, shown as the example of gatewayd.toml(5).
const PACKAGED_CONFIG: &str = include_str!("../../configs/deb/gatewayd.toml");

fn version() -> String {
    format!("gatewayd {}", env!("CARGO_PKG_VERSION"))
}

fn section(roff: &mut Roff, title: &str) {
    roff.control("SH", [title]);
}

fn paragraph(roff: &mut Roff, text: &str) {
    roff.control("PP", []).text([roman(text)]);
}

/// A tagged paragraph: `tag` in bold, then `text`.
fn tagged(roff: &mut Roff, tag: &str, text: &str) {
    roff.control("TP", []).text([bold(tag)]).text([roman(text)]);
}

fn literal(roff: &mut Roff, text: &str) {
    roff.control("PP", [])
        .control("nf", [])
        .control("RS", ["4"]);
    for line in text.lines() {
        roff.text([roman(line)]);
    }
    roff.control("RE", []).control("fi", []);
}

/// `gatewayd(8)`: the command line, from its clap definition, plus what clap does not know.
pub fn gatewayd_8() -> String {
    let cmd = Cli::command();
    let man = Man::new(cmd.clone())
        .section("8")
        .date(env!("GATEWAYD_COMMIT_DATE"))
        .source(version())
        .manual("System Administration");
    let mut out = Vec::new();
    // Writing to a Vec cannot fail.
    let _ = man.render_title(&mut out);
    let _ = man.render_name_section(&mut out);
    let _ = man.render_synopsis_section(&mut out);
    let _ = man.render_description_section(&mut out);
    let _ = man.render_options_section(&mut out);

    let mut roff = Roff::new();
    section(&mut roff, "COMMANDS");
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let mut usage = format!("gatewayd {}", sub.get_name());
        for arg in sub.get_arguments().filter(|a| !a.is_hide_set()) {
            if let (Some(long), Some(name)) = (arg.get_long(), arg.get_value_names()) {
                let value = name.first().map(|n| n.as_str()).unwrap_or("VALUE");
                usage.push_str(&format!(" --{long} {value}"));
            }
        }
        let about = sub
            .get_long_about()
            .or(sub.get_about())
            .map(|a| a.to_string())
            .unwrap_or_default();
        tagged(&mut roff, &usage, &about);
        for arg in sub.get_arguments().filter(|a| !a.is_hide_set()) {
            let Some(long) = arg.get_long() else { continue };
            let mut text = arg
                .get_long_help()
                .or(arg.get_help())
                .map(|h| h.to_string())
                .unwrap_or_default();
            if !text.is_empty() && !text.ends_with('.') {
                text.push('.');
            }
            if let Some(env) = arg.get_env() {
                text.push_str(&format!(
                    " Defaults to the environment variable {}.",
                    env.to_string_lossy()
                ));
            }
            let short = arg
                .get_short()
                .map(|s| format!("-{s}, "))
                .unwrap_or_default();
            roff.control("RS", [])
                .control("TP", [])
                .text([bold(format!("{short}--{long}"))])
                .text([roman(text)])
                .control("RE", []);
        }
    }
    paragraph(
        &mut roff,
        "Started by a web server as a CGI program (GATEWAY_INTERFACE set) without a subcommand, \
         gatewayd serves that one request with the config named by GATEWAYD_CONFIG, so a cgi-bin \
         wrapper can be a single exec line.",
    );

    section(&mut roff, "SIGNALS");
    tagged(
        &mut roff,
        "SIGTERM, SIGINT",
        "Drain: stop accepting, let in-flight requests finish for up to [server] \
         shutdown_timeout, cancel the rest, exit 0.",
    );
    tagged(
        &mut roff,
        "SIGHUP",
        "Re-read the config. An invalid one is logged with its FILE:LINE:COL and the old one \
         stays; a valid one swaps every app and mount at once and keeps the sockets that stay.",
    );
    paragraph(
        &mut roff,
        "With [server] processes, the signals go to the master. SIGTERM and SIGINT are \
         forwarded to every worker, each drains as above, and the master exits 0 when all have \
         exited (killing what is left 5 s past shutdown_timeout). SIGHUP is a chain reload: the \
         master checks the config, then for each worker starts a new one on the new config, \
         waits until it is ready, and tells the old one to finish what it began (SIGUSR2, the \
         master's own word to its workers) before the next; a config the master refuses, or \
         whose first new worker fails, leaves the old workers serving. Sockets stay as bound at \
         start: listener changes need a restart.",
    );

    section(&mut roff, "ENVIRONMENT");
    tagged(
        &mut roff,
        "GATEWAYD_CONFIG",
        "The config file when --config is not given.",
    );
    tagged(
        &mut roff,
        "GATEWAYD_LOG_FORMAT",
        "text or json, when --log-format is not given.",
    );
    tagged(
        &mut roff,
        "RUST_LOG",
        "Filters the log (default info), e.g. RUST_LOG=gatewayd::access=warn.",
    );
    tagged(
        &mut roff,
        "LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES",
        "Sockets passed by systemd socket activation, for systemd:NAME addresses.",
    );
    tagged(
        &mut roff,
        "NOTIFY_SOCKET, WATCHDOG_USEC",
        "systemd's notification socket: READY=1, RELOADING=1, STOPPING=1, WATCHDOG=1 and STATUS=.",
    );

    section(&mut roff, "EXIT STATUS");
    paragraph(
        &mut roff,
        "0 on success and after a drain; 1 when the config is invalid (check and serve print \
         FILE:LINE:COL: message on stderr) or a socket cannot be opened; 2 for a usage error.",
    );

    section(&mut roff, "FILES");
    tagged(
        &mut roff,
        "/etc/gatewayd/gatewayd.toml",
        "The packaged config; see gatewayd.toml(5).",
    );
    tagged(
        &mut roff,
        "/usr/lib/systemd/system/gatewayd.socket, gatewayd.service",
        "The socket and the hardened service; nothing is enabled on install: systemctl enable \
         --now gatewayd.socket.",
    );
    tagged(
        &mut roff,
        "/usr/lib/systemd/system/gatewayd@.service",
        "One more instance per config: gatewayd@NAME runs /etc/gatewayd/NAME.toml.",
    );
    tagged(
        &mut roff,
        "/etc/gatewayd/nginx-fastcgi.conf, /etc/gatewayd/nginx-scgi.conf, /etc/gatewayd/nginx-uwsgi.conf",
        "nginx snippets to include in a server block.",
    );

    section(&mut roff, "VERSION");
    roff.text([roman(super::VERSION)]);

    section(&mut roff, "SEE ALSO");
    roff.text([
        bold("gatewayd.toml"),
        roman("(5), "),
        bold("systemd.socket"),
        roman("(5), "),
        bold("nginx"),
        roman("(8), "),
        bold("systemd-socket-activate"),
        roman("(1)"),
    ]);
    let _ = roff.to_writer(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn table(roff: &mut Roff, t: &Table) {
    // The heading on the next line: a macro argument cannot hold the header's quotes.
    roff.control("SS", []).text([roman(t.header)]);
    roff.control("PP", []).text([roman(t.doc)]);
    for k in t.keys {
        let mut tag = vec![bold(k.name), roman(" = "), italic(k.value)];
        if let Some(d) = k.default {
            tag.push(roman(format!(" (default {d})")));
        }
        roff.control("TP", []).text(tag).text([roman(k.doc)]);
    }
}

/// `gatewayd.toml(5)`: the config file, from [`TABLES`] and [`APP_TYPES`].
pub fn gatewayd_toml_5() -> String {
    let mut roff = Roff::new();
    roff.control(
        "TH",
        [
            "gatewayd.toml",
            "5",
            env!("GATEWAYD_COMMIT_DATE"),
            &version(),
            "File Formats Manual",
        ],
    );
    section(&mut roff, "NAME");
    roff.text([roman("gatewayd.toml - the gatewayd configuration file")]);
    section(&mut roff, "SYNOPSIS");
    roff.text([bold("/etc/gatewayd/gatewayd.toml")]);
    section(&mut roff, "DESCRIPTION");
    paragraph(
        &mut roff,
        "One TOML file says where gatewayd listens, which apps it runs and where they are \
         mounted. Every key is checked and an unknown key is an error: gatewayd check --config \
         FILE validates a file and prints the first error as FILE:LINE:COL: message. SIGHUP \
         makes a running daemon re-read it.",
    );
    paragraph(
        &mut roff,
        "Durations are written \"500ms\", \"30s\", \"2m\"; sizes are bytes (an integer) or \
         \"64KiB\", \"10MB\", \"1GiB\".",
    );
    section(&mut roff, "TABLES");
    for t in TABLES {
        table(&mut roff, t);
    }
    section(&mut roff, "APP TYPES");
    for t in APP_TYPES {
        table(&mut roff, t);
    }
    section(&mut roff, "EXAMPLE");
    paragraph(
        &mut roff,
        "The packaged /etc/gatewayd/gatewayd.toml: a health check and the status page over \
         FastCGI on the socket that gatewayd.socket owns.",
    );
    literal(&mut roff, PACKAGED_CONFIG);
    section(&mut roff, "SEE ALSO");
    roff.text([bold("gatewayd"), roman("(8)")]);
    roff.render()
}
