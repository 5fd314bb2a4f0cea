//! The connector front door: runs a `command` connector's program with the
//! job as one JSON document on stdin (argv, no shell), under a timeout.
//! Exit 0 applies the job (the first line of stdout, if any, is the
//! target's id for the account); anything else fails it with the first
//! 512 bytes of stderr. Results go back through the service.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::config::{ConnectorConfig, ConnectorType};
use crate::service::connect::{Applier, TargetObject, Verdict, ERROR_BYTES};

pub mod ldap;
pub mod scim;

/// Applies jobs to every kind of target: runs the configured programs,
/// talks to the directories (keeping a connection per LDAP connector).
#[derive(Default)]
pub struct Runner {
    ldap: ldap::Pool,
}

impl Applier for Runner {
    fn apply(
        &self,
        connector: &ConnectorConfig,
        document: &Value,
    ) -> std::result::Result<Option<String>, String> {
        match &connector.kind {
            ConnectorType::Command { argv } => run_command(
                argv,
                document,
                Duration::from_secs(connector.timeout_seconds),
            ),
            ConnectorType::Ldap(cfg) => self.ldap.apply(connector, cfg, document),
            ConnectorType::Scim(cfg) => scim::Client::new(connector, cfg)?.apply(document),
        }
    }

    fn read_all(
        &self,
        connector: &ConnectorConfig,
    ) -> std::result::Result<Option<Vec<TargetObject>>, String> {
        match &connector.kind {
            ConnectorType::Command { .. } => Ok(None),
            ConnectorType::Ldap(cfg) => self.ldap.read_all(connector, cfg).map(Some),
            ConnectorType::Scim(cfg) => scim::Client::new(connector, cfg)?.read_all().map(Some),
        }
    }

    fn compare(
        &self,
        connector: &ConnectorConfig,
        document: &Value,
        found: Option<&TargetObject>,
    ) -> std::result::Result<Verdict, String> {
        match &connector.kind {
            ConnectorType::Command { .. } => Err("a command target cannot be read back".into()),
            ConnectorType::Ldap(cfg) => ldap::compare(cfg, document, found),
            ConnectorType::Scim(cfg) => scim::compare(cfg, document, found),
        }
    }

    fn disable_object(
        &self,
        connector: &ConnectorConfig,
        id: &str,
    ) -> std::result::Result<(), String> {
        match &connector.kind {
            ConnectorType::Command { .. } => Err("a command target cannot be read back".into()),
            ConnectorType::Ldap(cfg) => self.ldap.disable(connector, cfg, id),
            ConnectorType::Scim(cfg) => scim::Client::new(connector, cfg)?.disable(id),
        }
    }
}

fn one_line(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(ERROR_BYTES)];
    let text = String::from_utf8_lossy(cut);
    let text = text.trim();
    let text = text.replace(['\n', '\r'], " ");
    crate::text::escape_text(&text).to_string()
}

fn run_command(
    argv: &[String],
    document: &Value,
    timeout: Duration,
) -> std::result::Result<Option<String>, String> {
    let Some((program, args)) = argv.split_first() else {
        return Err("no program configured".into());
    };
    use std::os::unix::process::CommandExt;
    let mut child = Command::new(program)
        .args(args)
        // Its own process group: a timeout ends whatever it started, too.
        .process_group(0)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("TENURE_CONFIG")
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    let mut line = serde_json::to_vec(document).map_err(|e| format!("encode job: {e}"))?;
    line.push(b'\n');
    let stdin = child.stdin.take();
    let writer = std::thread::spawn(move || {
        if let Some(mut stdin) = stdin {
            // A program that exits without reading its input is its own business.
            let _ = stdin.write_all(&line);
        }
    });
    // Each pipe is read on its own thread into a channel, so a program
    // that leaves a process holding its output cannot hold the worker.
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                // Keep at most 64 KiB; read the rest away so the program never blocks.
                let mut chunk = [0u8; 8192];
                while let Ok(n) = p.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    if buf.len() < 64 * 1024 {
                        buf.extend_from_slice(&chunk[..n]);
                    }
                }
            }
            let _ = tx.send(buf);
        });
        rx
    };
    let out = reader(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = reader(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => {
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &format!("-{}", child.id())])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(format!("waiting for {program}: {e}")),
        }
    };
    let grace = Duration::from_secs(2);
    let stdout = out.recv_timeout(grace).unwrap_or_default();
    let stderr = err.recv_timeout(grace).unwrap_or_default();
    if status.is_some() {
        let _ = writer.join();
    }
    match status {
        None => Err(format!(
            "{program} did not finish within {} s",
            timeout.as_secs()
        )),
        Some(s) if s.success() => {
            let first = String::from_utf8_lossy(&stdout)
                .lines()
                .next()
                .map(|l| l.trim().to_string())
                .filter(|l| !l.is_empty());
            Ok(first.map(|l| crate::bounded::cut(&l, 256).into_owned()))
        }
        Some(s) => {
            let why = one_line(&stderr);
            Err(if why.is_empty() {
                format!("{program} exited {s}")
            } else {
                why
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str, timeout: u64) -> ConnectorConfig {
        ConnectorConfig {
            name: "t".into(),
            kind: ConnectorType::Command {
                argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
            },
            kinds: Default::default(),
            timeout_seconds: timeout,
            reconcile_hours: None,
            passwords: false,
        }
    }

    #[test]
    fn the_program_gets_the_document_and_its_exit_decides() {
        let doc = serde_json::json!({"action": "create", "account": {"username": "bob"}});
        // The document arrives as one line on stdin; stdout's first line is the id.
        let ok = Runner::default().apply(
            &sh(r#"read -r line; case "$line" in *'"username":"bob"'*) echo "id-1"; echo more;; *) exit 9;; esac"#, 5),
            &doc,
        );
        assert_eq!(ok, Ok(Some("id-1".into())));
        assert_eq!(
            Runner::default().apply(&sh("cat >/dev/null", 5), &doc),
            Ok(None)
        );
        // A failure is stderr's first 512 bytes, on one line.
        let long = Runner::default()
            .apply(
                &sh("cat >/dev/null; printf 'no such\\nuser ' >&2; head -c 2000 /dev/zero | tr '\\0' x >&2; exit 3", 5),
                &doc,
            )
            .unwrap_err();
        assert!(
            long.starts_with("no such user xxx") && long.len() == 512,
            "{}",
            long.len()
        );
        let silent = Runner::default().apply(&sh("exit 4", 5), &doc).unwrap_err();
        assert!(
            silent.contains("exited") && silent.contains('4'),
            "{silent}"
        );
        // The timeout kills it.
        let started = Instant::now();
        let slow = Runner::default()
            .apply(&sh("sleep 20", 1), &doc)
            .unwrap_err();
        assert!(slow.contains("did not finish within 1 s"), "{slow}");
        assert!(started.elapsed() < Duration::from_secs(10));
        let missing = Runner::default()
            .apply(
                &ConnectorConfig {
                    kind: ConnectorType::Command {
                        argv: vec!["/nonexistent/push".into()],
                    },
                    ..sh("", 5)
                },
                &doc,
            )
            .unwrap_err();
        assert!(
            missing.starts_with("cannot run /nonexistent/push"),
            "{missing}"
        );
    }
}
