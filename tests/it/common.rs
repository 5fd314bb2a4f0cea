//! Helpers: a throwaway tenure instance in a temp dir, driven through the
//! real binary. Keys are generated at test time with ssh-keygen (never committed).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_tenure");

/// The offline actor name the binary records (we set USER for every run).
pub const ACTOR: &str = "local:tester";

/// Exit code, stdout, stderr.
pub type Run = (i32, String, String);

pub struct Instance {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    /// When set (e.g. `+40d`), every run preloads libfaketime with FAKETIME=OFFSET.
    faketime: std::cell::RefCell<Option<String>>,
    /// Extra environment for every later run of the binary (see `set_env`).
    env: std::cell::RefCell<Vec<(String, String)>>,
}

impl Instance {
    /// An empty instance: a copy of the shipped example config in a temp dir.
    pub fn new() -> Instance {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("config.example.toml");
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
        std::fs::copy(&example, &config).expect("copy config.example.toml");
        Instance {
            dir,
            config,
            faketime: std::cell::RefCell::new(None),
            env: std::cell::RefCell::new(Vec::new()),
        }
    }

    /// An instance initialised with admin `alice` (with an ed25519 key).
    pub fn initialised() -> Instance {
        let inst = Instance::new();
        let key = inst.keygen("alice", "ed25519", None);
        let out = inst.ok(&["init", "--admin", "alice", "--key", key.to_str().unwrap()]);
        assert!(out.contains("initialised"), "{out}");
        inst
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs every later command with the clock shifted by `offset`
    /// (FAKETIME, e.g. `+40d` or `@2030-06-30 23:59:56`); `None` goes back to the real clock.
    pub fn set_faketime(&self, offset: Option<&str>) {
        *self.faketime.borrow_mut() = offset.map(str::to_string);
    }

    /// A `Command` for the binary, with libfaketime preloaded when a time is set.
    /// (Not the `faketime` wrapper: its named semaphores outlive a killed server
    /// and collide with a later process of the same pid.)
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.envs(self.env.borrow().iter().map(|(k, v)| (k, v)));
        if let Some(offset) = self.faketime.borrow().as_deref() {
            cmd.env("LD_PRELOAD", libfaketime())
                .env("FAKETIME", offset)
                // Only the wall clock travels; a server's timers stay on the real one.
                .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
        }
        cmd
    }

    /// Sets `key=value` in the environment of every later run (server or
    /// offline), e.g. `TENURE_AUDIT_SEGMENT_EVENTS` for small audit segments.
    pub fn set_env(&self, key: &str, value: &str) {
        let mut env = self.env.borrow_mut();
        env.retain(|(k, _)| k != key);
        env.push((key.to_string(), value.to_string()));
    }

    pub fn data_dir(&self) -> PathBuf {
        self.path("data")
    }

    /// Generates a key pair named `name` (`ssh-keygen -t kind [-b bits]`);
    /// returns the path of the public key file.
    pub fn keygen(&self, name: &str, kind: &str, bits: Option<u32>) -> PathBuf {
        let private = self.path(name);
        let mut cmd = Command::new("ssh-keygen");
        cmd.args(["-q", "-t", kind, "-N", "", "-C", &format!("{name}@test")]);
        if let Some(bits) = bits {
            cmd.args(["-b", &bits.to_string()]);
        }
        let status = cmd
            .arg("-f")
            .arg(&private)
            .stdin(Stdio::null())
            .status()
            .expect("run ssh-keygen");
        assert!(status.success(), "ssh-keygen -t {kind} {bits:?} failed");
        private.with_extension("pub")
    }

    /// The public key line of a key made by `keygen`.
    pub fn pubkey(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(&format!("{name}.pub"))).expect("read .pub")
    }

    pub fn run<S: AsRef<str>>(&self, args: &[S]) -> Run {
        self.exec(args, None)
    }

    pub fn run_stdin<S: AsRef<str>>(&self, args: &[S], stdin: &str) -> Run {
        self.exec(args, Some(stdin))
    }

    fn exec<S: AsRef<str>>(&self, args: &[S], stdin: Option<&str>) -> Run {
        let mut child = self
            .command()
            .arg("--config")
            .arg(&self.config)
            .args(args.iter().map(AsRef::as_ref))
            .current_dir(self.dir.path())
            .env("USER", "tester")
            .env_remove("TENURE_CONFIG")
            .env_remove("TENURE_LOG")
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tenure");
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            // The binary may refuse before reading stdin: a broken pipe is fine.
            let _ = pipe.write_all(text.as_bytes());
        }
        let out = child.wait_with_output().expect("wait for tenure");
        (
            out.status.code().expect("tenure killed by a signal"),
            String::from_utf8(out.stdout).expect("stdout is UTF-8"),
            String::from_utf8(out.stderr).expect("stderr is UTF-8"),
        )
    }

    /// Runs a command that must succeed with a quiet stderr; returns stdout.
    pub fn ok<S: AsRef<str>>(&self, args: &[S]) -> String {
        check_ok(args, self.run(args))
    }

    pub fn ok_stdin<S: AsRef<str>>(&self, args: &[S], stdin: &str) -> String {
        check_ok(args, self.run_stdin(args, stdin))
    }

    /// `ok` for a command line given as one string (see `sh`).
    pub fn sh(&self, line: &str) -> String {
        self.ok(&sh(line))
    }

    /// Runs a successful command and parses its stdout as one JSON document.
    pub fn json<S: AsRef<str>>(&self, args: &[S]) -> Value {
        let out = self.ok(args);
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("{:?}: not JSON ({e}): {out}", strs(args)))
    }

    /// Runs a command that must fail with `code`, nothing on stdout and
    /// exactly one `error: ` line on stderr; returns that line.
    pub fn fails<S: AsRef<str>>(&self, args: &[S], code: i32) -> String {
        let run = self.run(args);
        check_error(args, &run, code).unwrap_or_else(|e| panic!("{e}"));
        run.2.trim_end().to_string()
    }

    /// `user show NAME --json`.
    pub fn show(&self, name: &str) -> Value {
        self.json(&["user", "show", name, "--json"])
    }

    /// `user create NAME --email NAME@example.com --display-name NAME FLAGS`.
    pub fn create(&self, name: &str, flags: &str) -> String {
        self.sh(&format!(
            "user create {name} --email {name}@example.com --display-name {name} {flags}"
        ))
    }

    /// Everything a failed command must leave untouched.
    pub fn snapshot(&self) -> (String, String) {
        (
            self.ok(&["audit", "tail", "-n", "1000", "--json"]),
            self.ok(&["export", "--format", "json"]),
        )
    }
}

/// Splits a command line on spaces; 'single quotes' group words.
pub fn sh(line: &str) -> Vec<String> {
    line.split('\'')
        .enumerate()
        .flat_map(|(i, part)| {
            if i % 2 == 1 {
                vec![part.to_string()]
            } else {
                part.split_whitespace().map(str::to_string).collect()
            }
        })
        .collect()
}

fn strs<S: AsRef<str>>(args: &[S]) -> Vec<&str> {
    args.iter().map(AsRef::as_ref).collect()
}

fn check_ok<S: AsRef<str>>(args: &[S], (code, stdout, stderr): Run) -> String {
    assert!(
        code == 0 && stderr.is_empty(),
        "{:?} exited {code}\nstdout: {stdout}\nstderr: {stderr}",
        strs(args)
    );
    stdout
}

/// The error contract: the exit code, no stdout, one `error: ` line on stderr.
pub fn check_error<S: AsRef<str>>(
    args: &[S],
    (code, stdout, stderr): &Run,
    want: i32,
) -> Result<(), String> {
    let lines: Vec<&str> = stderr.lines().collect();
    if *code != want || !stdout.is_empty() || lines.len() != 1 || !lines[0].starts_with("error: ") {
        return Err(format!(
            "{:?}: want exit {want} with one `error: ` line; got exit {code}\n  stdout: {stdout:?}\n  stderr: {stderr:?}",
            strs(args)
        ));
    }
    Ok(())
}

/// The string values of `key` in a JSON array of objects.
pub fn names(list: &Value, key: &str) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not an array: {list}"))
        .iter()
        .map(|v| v[key].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The SHA256 fingerprint `ssh-keygen -lf` reports for a public key file.
pub fn ssh_keygen_fingerprint(pubkey: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(pubkey)
        .output()
        .expect("run ssh-keygen -lf");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    text.split_whitespace()
        .nth(1)
        .expect("fingerprint field")
        .to_string()
}

// ---------------------------------------------------------------------------
// The real server and the real OpenSSH client.

use std::io::Read;
use std::process::{Child, ExitStatus};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long any single client or server step may take before a test fails.
pub const STEP: Duration = Duration::from_secs(30);

/// Where Debian's faketime package puts the library.
pub fn libfaketime() -> String {
    let candidates = [
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/faketime/libfaketime.so.1",
    ];
    candidates
        .iter()
        .find(|p| Path::new(p).exists())
        .map(|p| p.to_string())
        .expect("libfaketime (apt-get install faketime; scripts/test.sh does)")
}

/// Text a child writes to a pipe, collected by a thread as it arrives.
#[derive(Clone, Default)]
pub struct Collected(Arc<Mutex<Vec<u8>>>);

impl Collected {
    pub fn from<R: Read + Send + 'static>(pipe: R) -> Collected {
        let text = Collected::default();
        let sink = text.clone();
        std::thread::spawn(move || {
            // Raw chunks, not lines: a console draws without newlines.
            let mut pipe = pipe;
            let mut buf = [0u8; 8192];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.0.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        text
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// Polls until `pred` holds for the text so far, or panics after `limit`.
    pub fn wait_for(&self, what: &str, limit: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let text = self.text();
            if pred(&text) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "no {what} within {limit:?}; so far: {text:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// A child process (a server or a long-lived client) that is killed when dropped.
pub struct Proc {
    pub child: Child,
    pub stdout: Collected,
    pub stderr: Collected,
}

impl Proc {
    pub fn spawn(cmd: &mut Command) -> Proc {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        let stdout = Collected::from(child.stdout.take().unwrap());
        let stderr = Collected::from(child.stderr.take().unwrap());
        Proc {
            child,
            stdout,
            stderr,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status if the process ended within `limit`, polling every few ms.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// Writes to the child's stdin (which must be piped).
    pub fn send(&mut self, bytes: &[u8]) {
        let pipe = self.child.stdin.as_mut().expect("stdin is piped");
        pipe.write_all(bytes).expect("write to the child's stdin");
        pipe.flush().unwrap();
    }

    /// Sends a signal with `kill -SIG PID`.
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{sig} {}", self.pid());
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `tenure serve` on an ephemeral loopback port.
pub struct Server {
    pub proc: Proc,
    pub port: u16,
}

impl Server {
    /// Starts `cmd` (a `tenure ... serve --listen 127.0.0.1:0`) and waits for
    /// its `tenure listening on 127.0.0.1:PORT` line.
    pub fn start(cmd: &mut Command) -> Server {
        let mut proc = Proc::spawn(cmd.stdin(Stdio::null()));
        let deadline = Instant::now() + STEP;
        loop {
            let out = proc.stdout.text();
            if let Some(port) = out.lines().find_map(|l| {
                l.strip_prefix("tenure listening on 127.0.0.1:")
                    .and_then(|rest| rest.split_whitespace().next())
                    .and_then(|p| p.parse::<u16>().ok())
            }) {
                return Server { proc, port };
            }
            if let Some(status) = proc.child.try_wait().unwrap() {
                panic!(
                    "tenure serve exited {status} before listening\nstdout: {out}\nstderr: {}",
                    proc.stderr.text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "tenure serve did not report its address within {STEP:?}\nstdout: {out}\nstderr: {}",
                proc.stderr.text()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn stdout(&self) -> String {
        self.proc.stdout.text()
    }

    /// The OpenSSH client, isolated from the user's config and known hosts,
    /// never prompting. Add the method options, then the command.
    pub fn ssh_base(&self, user: &str) -> Command {
        ssh_base(self.port, user)
    }

    /// Public-key login with the private key `key` (BatchMode: never prompts).
    pub fn ssh_key(&self, user: &str, key: &Path) -> Command {
        ssh_key(self.port, user, key)
    }

    /// Runs `line` as `user` with the key `key`, optional stdin.
    pub fn exec(&self, user: &str, key: &Path, line: &str, stdin: Option<&str>) -> Run {
        ssh_exec(self.port, user, key, line, stdin)
    }

    /// Keyboard-interactive login; the askpass script answers the prompts
    /// from `answers` (see `Askpass`).
    pub fn ssh_kbdint(&self, user: &str, answers: &Askpass) -> Command {
        let mut cmd = self.ssh_base(user);
        cmd.args(["-o", "BatchMode=no"])
            .args(["-o", "PreferredAuthentications=keyboard-interactive"])
            .args(["-o", "PubkeyAuthentication=no"])
            .args(["-o", "NumberOfPasswordPrompts=1"])
            .env("SSH_ASKPASS", &answers.script)
            .env("SSH_ASKPASS_REQUIRE", "force")
            .env("DISPLAY", ":0")
            .env("ASKPASS_PASSWORD", &answers.password)
            .env("ASKPASS_CODE", &answers.code)
            .env("ASKPASS_ENROL", &answers.enrolment)
            .env("ASKPASS_NEW", &answers.new_password)
            .env("ASKPASS_REPEAT", &answers.repeat)
            .env("ASKPASS_LOG", &answers.log);
        cmd
    }

    pub fn exec_kbdint(
        &self,
        user: &str,
        answers: &Askpass,
        line: &str,
        stdin: Option<&str>,
    ) -> Run {
        let mut cmd = self.ssh_kbdint(user, answers);
        cmd.arg("127.0.0.1").arg(line);
        run_bounded(&mut cmd, stdin, STEP)
    }

    /// SIGTERM, then the exit status within `limit`.
    pub fn terminate(&mut self, limit: Duration) -> Option<ExitStatus> {
        self.proc.signal("TERM");
        self.proc.wait_exit(limit)
    }
}

/// What the askpass script answers to each keyboard-interactive prompt.
#[derive(Clone)]
pub struct Askpass {
    pub script: PathBuf,
    /// Every prompt the script was asked, one a line.
    pub log: PathBuf,
    pub password: String,
    pub code: String,
    pub enrolment: String,
    /// The answers to `New password:` and `Repeat:` (an expired or temporary password).
    pub new_password: String,
    pub repeat: String,
}

impl Askpass {
    /// Writes the script into `dir`. ssh runs it once per prompt with the
    /// prompt text as $1 (SSH_ASKPASS_REQUIRE=force: no tty needed).
    pub fn new(dir: &Path) -> Askpass {
        let script = dir.join("askpass.sh");
        let log = dir.join("askpass.log");
        std::fs::write(
            &script,
            "#!/bin/sh\n\
             printf '%s\\n' \"$1\" >> \"$ASKPASS_LOG\"\n\
             case \"$1\" in\n\
             *'New password'*) printf '%s\\n' \"$ASKPASS_NEW\" ;;\n\
             *Repeat*) printf '%s\\n' \"$ASKPASS_REPEAT\" ;;\n\
             *Password*) printf '%s\\n' \"$ASKPASS_PASSWORD\" ;;\n\
             *'Verification code'*) printf '%s\\n' \"$ASKPASS_CODE\" ;;\n\
             *'Enrolment code'*) printf '%s\\n' \"$ASKPASS_ENROL\" ;;\n\
             *) exit 1 ;;\n\
             esac\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        Askpass {
            script,
            log,
            password: String::new(),
            code: String::new(),
            enrolment: String::new(),
            new_password: String::new(),
            repeat: String::new(),
        }
    }

    pub fn password(&self, password: &str, code: &str) -> Askpass {
        Askpass {
            password: password.into(),
            code: code.into(),
            ..self.clone()
        }
    }

    /// Also answers `New password:` with `new` and `Repeat:` with `repeat`.
    pub fn new_password(&self, new: &str, repeat: &str) -> Askpass {
        Askpass {
            new_password: new.into(),
            repeat: repeat.into(),
            ..self.clone()
        }
    }

    pub fn enrolment(&self, code: &str) -> Askpass {
        Askpass {
            enrolment: code.into(),
            password: code.into(),
            code: code.into(),
            ..self.clone()
        }
    }

    pub fn prompts(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Runs a command to completion within `limit` (killed and failed after),
/// feeding `stdin` (or /dev/null). A child killed by a signal reports -1.
pub fn run_bounded(cmd: &mut Command, stdin: Option<&str>, limit: Duration) -> Run {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut proc = Proc::spawn(cmd);
    if let (Some(text), Some(mut pipe)) = (stdin, proc.child.stdin.take()) {
        let text = text.to_string();
        // The peer may refuse before reading: a broken pipe is fine.
        std::thread::spawn(move || {
            let _ = pipe.write_all(text.as_bytes());
        });
    }
    let Some(status) = proc.wait_exit(limit) else {
        panic!(
            "{cmd:?} did not finish within {limit:?}\nstdout: {}\nstderr: {}",
            proc.stdout.text(),
            proc.stderr.text()
        );
    };
    // The reader threads finish at EOF, right after the exit; wait for them.
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline
        && (Arc::strong_count(&proc.stdout.0) > 1 || Arc::strong_count(&proc.stderr.0) > 1)
    {
        std::thread::sleep(Duration::from_millis(2));
    }
    (
        status.code().unwrap_or(-1),
        proc.stdout.text(),
        proc.stderr.text(),
    )
}

impl Instance {
    /// Replaces `from` (which must be in the config) with `to`.
    pub fn edit_config(&self, from: &str, to: &str) {
        let text = std::fs::read_to_string(&self.config).unwrap();
        assert!(text.contains(from), "config has no {from:?}");
        std::fs::write(&self.config, text.replacen(from, to, 1)).unwrap();
    }

    /// `user show NAME --json` over ssh as alice (while a server holds the database).
    pub fn show_over(&self, server: &Server, name: &str) -> Value {
        let (code, out, err) = server.exec(
            "alice",
            &self.path("alice"),
            &format!("user show {name} --json"),
            None,
        );
        assert_eq!(code, 0, "{err}");
        serde_json::from_str(&out).unwrap()
    }

    /// `tenure --config F serve --listen 127.0.0.1:0`, ready for logins.
    pub fn serve(&self) -> Server {
        let mut cmd = self.command();
        cmd.arg("--config")
            .arg(&self.config)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .current_dir(self.dir.path())
            .env("USER", "tester")
            .env_remove("TENURE_CONFIG")
            .env_remove("TENURE_LOG");
        Server::start(&mut cmd)
    }
}

/// The OpenSSH client for the server on `port`, isolated from the user's
/// config and known hosts, never prompting. Add the method options, then the command.
pub fn ssh_base(port: u16, user: &str) -> Command {
    let mut cmd = Command::new("ssh");
    cmd.args(["-F", "/dev/null"])
        .args(["-o", "StrictHostKeyChecking=no"])
        .args(["-o", "UserKnownHostsFile=/dev/null"])
        .args(["-o", "GlobalKnownHostsFile=/dev/null"])
        .args(["-o", "LogLevel=ERROR"])
        .args(["-o", "ConnectTimeout=10"])
        .args(["-o", "IdentitiesOnly=yes"])
        .args(["-o", "ServerAliveInterval=0"])
        .args(["-p", &port.to_string()])
        .args(["-l", user])
        .env_remove("SSH_AUTH_SOCK");
    cmd
}

/// Public-key login with the private key `key` (BatchMode: never prompts).
pub fn ssh_key(port: u16, user: &str, key: &Path) -> Command {
    let mut cmd = ssh_base(port, user);
    cmd.arg("-i")
        .arg(key)
        .args(["-o", "BatchMode=yes"])
        .args(["-o", "PreferredAuthentications=publickey"]);
    cmd
}

/// Runs `line` as `user` with the key `key` on the server at `port` (usable
/// from threads that do not own the `Server`).
pub fn ssh_exec(port: u16, user: &str, key: &Path, line: &str, stdin: Option<&str>) -> Run {
    let mut cmd = ssh_key(port, user, key);
    cmd.arg("127.0.0.1").arg(line);
    run_bounded(&mut cmd, stdin, STEP)
}
