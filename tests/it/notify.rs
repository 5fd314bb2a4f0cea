//! Notifications end to end: the real server, a real SMTP server (aiosmtpd)
//! that starts late, and a webhook receiver on loopback checking the HMAC.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{Instance, Proc, Server};

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn ssh(inst: &Instance, server: &Server, command: &str) -> (i32, String, String) {
    server.exec("alice", &inst.path("alice"), command, None)
}

pub(crate) fn wait_for<T>(
    what: &str,
    deadline: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub(crate) fn python() -> Option<String> {
    if let Ok(p) = std::env::var("TEST_PYTHON") {
        return Some(p);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-test/bin/python");
    venv.exists().then(|| venv.to_string_lossy().into_owned())
}

pub(crate) fn smtp_server(python: &str, port: u16, maildir: &Path) -> Proc {
    let mut cmd = Command::new(python);
    cmd.args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
        .args(["-c", "aiosmtpd.handlers.Mailbox"])
        .arg(maildir)
        .stdin(Stdio::null());
    Proc::spawn(&mut cmd)
}

pub(crate) fn mails(maildir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for sub in ["new", "cur"] {
        if let Ok(entries) = std::fs::read_dir(maildir.join(sub)) {
            for e in entries.flatten() {
                out.push(std::fs::read_to_string(e.path()).unwrap_or_default());
            }
        }
    }
    out
}

/// A webhook receiver: answers 200 to each POST and hands over (headers, body).
fn webhook_receiver() -> (u16, mpsc::Receiver<(String, Vec<u8>)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(20) {
            let Ok(mut stream) = stream else { continue };
            stream.set_read_timeout(Some(Duration::from_secs(5))).ok();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                head.push_str(&line);
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let _ = tx.send((head, body));
        }
    });
    (port, rx)
}

#[test]
fn mail_queued_while_smtp_is_down_survives_a_restart_and_webhooks_are_signed() {
    let Some(python) = python() else {
        eprintln!("skipped: no Python with aiosmtpd (run ./scripts/test.sh, which installs it)");
        return;
    };
    let inst = Instance::initialised();
    let smtp_port = free_port();
    let (hook_port, hooks) = webhook_receiver();
    std::fs::write(inst.path("hook_secret"), "s3cret-key\n").unwrap();
    let mut config = std::fs::read_to_string(&inst.config).unwrap();
    config = config.replace("retry_seconds = 30", "retry_seconds = 1");
    config.push_str(&format!(
        "\n[notify.smtp]\nhost = \"127.0.0.1\"\nport = {smtp_port}\nfrom = \"tenure <tenure@example.com>\"\nsecurity = \"plain\"\n\n\
         [[notify.webhooks]]\nurl = \"http://127.0.0.1:{hook_port}/hook\"\nsecret_file = \"hook_secret\"\nevents = [\"disabled\"]\n"
    ));
    std::fs::write(&inst.config, config).unwrap();
    inst.ok(&["user", "update", "alice", "--email", "alice@example.com"]);

    // SMTP is down: the creation mail waits in the outbox.
    let server = inst.serve();
    let (code, _, err) = ssh(&inst, &server, "user create bob --email bob@acme.example --display-name 'Bob Builder' --kind contractor --company Acme --sponsor alice --end +60d");
    assert_eq!(code, 0, "{err}");
    let queued: Value = wait_for("a failed delivery attempt", Duration::from_secs(20), || {
        let (_, out, _) = ssh(&inst, &server, "notify queue --json");
        let v: Value = serde_json::from_str(&out).ok()?;
        let entry = v
            .as_array()?
            .iter()
            .find(|e| e["event"] == "created")?
            .clone();
        (entry["attempts"].as_u64()? >= 1).then_some(entry)
    });
    assert_eq!(queued["state"], "pending");
    assert!(
        queued["last_error"].as_str().unwrap().contains("smtp"),
        "{queued}"
    );

    // A restart with the mail still pending: nothing is lost.
    drop(server);
    let maildir: PathBuf = inst.path("maildir");
    let _smtp = smtp_server(&python, smtp_port, &maildir);
    let server = inst.serve();
    let mail = wait_for("the creation mail", Duration::from_secs(30), || {
        mails(&maildir).into_iter().find(|m| m.contains("bob"))
    });
    assert!(
        mail.contains("it-ops@example.com") && mail.contains("alice@example.com"),
        "to IT and the sponsor:\n{mail}"
    );
    for detail in ["Bob Builder", "bob@acme.example", "contractor", "Acme"] {
        assert!(mail.contains(detail), "the mail carries {detail}:\n{mail}");
    }

    // Disabling sends the signed webhook (and a mail).
    let (code, _, err) = ssh(&inst, &server, "user disable bob --reason 'contract ended'");
    assert_eq!(code, 0, "{err}");
    let (head, body) = hooks
        .recv_timeout(Duration::from_secs(20))
        .expect("webhook POST");
    let signature = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("x-tenure-signature:")
                .map(|v| v.trim().to_string())
        })
        .expect("signature header");
    assert_eq!(
        signature,
        format!("sha256={}", tenure::notify::sign(b"s3cret-key", &body))
    );
    let payload: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(payload["event"], "disabled");
    assert_eq!(payload["account"]["username"], "bob");
    assert_eq!(payload["details"]["reason"], "contract ended");
    wait_for("the disable mail", Duration::from_secs(20), || {
        mails(&maildir).into_iter().find(|m| m.contains("disabled"))
    });
    let (_, out, _) = ssh(&inst, &server, "notify queue");
    assert!(out.contains("the outbox is empty"), "{out}");
}
