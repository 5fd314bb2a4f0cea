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
}

impl Instance {
    /// An empty instance: a copy of the shipped example config in a temp dir.
    pub fn new() -> Instance {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("config.example.toml");
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
        std::fs::copy(&example, &config).expect("copy config.example.toml");
        Instance { dir, config }
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
        let mut child = Command::new(BIN)
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
