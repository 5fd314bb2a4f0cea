//! One console per SSH channel: a task that owns its `App` and `Terminal`,
//! fed with the channel's bytes and window changes, drawing into a buffer
//! that goes out as one SSH data message per frame. Ratatui diffs frames,
//! so an idle console sends nothing and a keystroke sends what changed.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ratatui::backend::CrosstermBackend;
use ratatui::layout::Rect;
use ratatui::{Terminal, TerminalOptions, Viewport};
use russh::server::{Handle, Msg};
use russh::ChannelWriteHalf;
use tokio::sync::mpsc;

use super::app::App;
use super::theme::Theme;
use super::view::draw;
use crate::service::{Actor, Services};
use crate::term::input::Decoder;

pub enum ConsoleInput {
    Bytes(Vec<u8>),
    Resize(u16, u16),
}

/// Most input bytes queued for a console: typing needs a few bytes, a paste
/// at most `term::input`'s 64 KiB. Past it, input is dropped.
pub const MAX_QUEUED_INPUT: usize = 256 * 1024;

/// The connection's end of a console: where its input goes. Dropping it (the
/// channel closed, the client went) tells the console to stop at once,
/// discarding whatever input is still queued.
pub struct ConsoleLink {
    tx: mpsc::Sender<ConsoleInput>,
    closed: Arc<AtomicBool>,
    queued: Arc<AtomicUsize>,
}

impl ConsoleLink {
    /// Queues the client's bytes; `false` when they were dropped (the
    /// console is behind by more than `MAX_QUEUED_INPUT`).
    pub fn bytes(&self, data: &[u8]) -> bool {
        if self.queued.load(Ordering::Relaxed) + data.len() > MAX_QUEUED_INPUT {
            return false;
        }
        self.queued.fetch_add(data.len(), Ordering::Relaxed);
        if self
            .tx
            .try_send(ConsoleInput::Bytes(data.to_vec()))
            .is_err()
        {
            self.queued.fetch_sub(data.len(), Ordering::Relaxed);
            return false;
        }
        true
    }

    pub fn resize(&self, cols: u16, rows: u16) {
        let _ = self.tx.try_send(ConsoleInput::Resize(cols, rows));
    }
}

impl Drop for ConsoleLink {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::Relaxed);
    }
}

/// What the client told us about its terminal before the shell started.
#[derive(Clone, Debug, Default)]
pub struct ConsoleOptions {
    pub cols: u16,
    pub rows: u16,
    /// `NO_COLOR` was set (any value, as no-color.org says).
    pub no_color: bool,
    /// `TENURE_THEME` (default, light, high-contrast).
    pub theme: Option<String>,
}

impl ConsoleOptions {
    /// Takes one environment variable the client sent; ignores the rest.
    pub fn env(&mut self, name: &str, value: &str) {
        match name {
            "NO_COLOR" => self.no_color = true,
            "TENURE_THEME" => self.theme = Some(value.to_string()),
            _ => {}
        }
    }
}

/// Collects what ratatui writes; the session task sends it.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Sink {
    fn take(&self) -> Vec<u8> {
        self.0
            .lock()
            .map(|mut b| std::mem::take(&mut *b))
            .unwrap_or_default()
    }
    fn push(&self, bytes: &[u8]) {
        if let Ok(mut b) = self.0.lock() {
            b.extend_from_slice(bytes);
        }
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.push(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const ENTER: &[u8] = b"\x1b[?1049h\x1b[?25l\x1b[?2004h\x1b[2J";
const LEAVE: &[u8] = b"\x1b[?2004l\x1b[?25h\x1b[?1049l";
/// How long a lone Esc waits for the rest of a sequence.
const ESC_TIMEOUT: Duration = Duration::from_millis(40);

/// Starts the console on `channel`; returns where to send its input.
pub fn start(
    services: Services,
    actor: Actor,
    handle: Handle,
    writer: ChannelWriteHalf<Msg>,
    options: ConsoleOptions,
    slot: crate::service::sessions::ConsoleSlot,
) -> ConsoleLink {
    let (tx, rx) = mpsc::channel(64);
    let closed = Arc::new(AtomicBool::new(false));
    let queued = Arc::new(AtomicUsize::new(0));
    let input = Input {
        rx,
        closed: closed.clone(),
        queued: queued.clone(),
    };
    tokio::spawn(async move {
        run(services, actor, handle, writer, options, input).await;
        drop(slot);
    });
    ConsoleLink { tx, closed, queued }
}

/// The console's end of its input.
struct Input {
    rx: mpsc::Receiver<ConsoleInput>,
    closed: Arc<AtomicBool>,
    queued: Arc<AtomicUsize>,
}

/// Draws the next frame: a diff against the last one, or the whole screen
/// when the frame buffers were given back (idle, or the client fell behind).
fn next_frame(
    terminal: &mut Option<Terminal<CrosstermBackend<Sink>>>,
    sink: &Sink,
    size: (u16, u16),
    app: &App,
) -> Vec<u8> {
    if terminal.is_none() {
        // A fresh terminal diffs against a blank screen: clear it first.
        sink.push(b"\x1b[2J");
        *terminal = new_terminal(sink, size);
    }
    if let Some(terminal) = terminal.as_mut() {
        let _ = terminal.draw(|f| draw(app, f));
    }
    sink.take()
}

/// Frames go out through a writer task with room for one frame. The channel
/// writer waits for the client's SSH window, so while the client does not
/// read, the writer waits, the console stops drawing and holds no frame
/// buffers, then draws one whole frame when the client reads again.
fn frame_writer(
    writer: ChannelWriteHalf<Msg>,
) -> (mpsc::Sender<Vec<u8>>, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(1);
    let task = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if writer.data_bytes(frame).await.is_err() {
                break;
            }
        }
    });
    (tx, task)
}

/// The theme a console opens with: the client's TENURE_THEME, else the
/// account's choice, else the config's (else the default).
fn chosen_theme(options: &ConsoleOptions, services: &Services, actor: &Actor) -> Option<String> {
    options
        .theme
        .clone()
        .or_else(|| services.load(&actor.name).ok().and_then(|a| a.theme))
        .or_else(|| services.config().console.theme.clone())
}

/// How long a console waits without input or change before it gives back
/// its frame buffers.
const IDLE_RELEASE: Duration = Duration::from_secs(3);

fn new_terminal(sink: &Sink, (cols, rows): (u16, u16)) -> Option<Terminal<CrosstermBackend<Sink>>> {
    let options = TerminalOptions {
        viewport: Viewport::Fixed(Rect::new(0, 0, cols.max(1), rows.max(1))),
    };
    Terminal::with_options(CrosstermBackend::new(sink.clone()), options).ok()
}

async fn run(
    services: Services,
    actor: Actor,
    handle: Handle,
    writer: ChannelWriteHalf<Msg>,
    options: ConsoleOptions,
    mut input: Input,
) {
    let channel = writer.id();
    let (cols, rows) = (options.cols, options.rows);
    let mut size = (cols, rows);
    let sink = Sink::default();
    let Some(mut terminal) = new_terminal(&sink, size) else {
        return;
    };
    let (frames, writer) = frame_writer(writer);
    sink.push(ENTER);
    let no_color = options.no_color;
    let Ok(mut app) = tokio::task::spawn_blocking(move || {
        let theme = Theme::choose(
            chosen_theme(&options, &services, &actor).as_deref(),
            no_color,
        );
        let mut app = App::with_theme(services, actor, theme, no_color);
        app.resize(rows);
        app
    })
    .await
    else {
        return;
    };
    let _ = terminal.draw(|f| draw(&app, f));
    if frames.send(sink.take()).await.is_err() {
        return;
    }
    // The frame buffers (two per console) are only needed to diff the next
    // frame: an idle console gives them back and draws its next frame whole.
    let mut terminal = Some(terminal);
    let mut active = tokio::time::Instant::now();
    let mut decoder = Decoder::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    // A frame is due but the client has not read the last one yet.
    let mut behind = false;
    loop {
        let esc_wait = decoder.waiting();
        let mut redraw = false;
        let mut keys = Vec::new();
        tokio::select! {
            message = input.rx.recv() => match message {
                None => break,
                Some(_) if input.closed.load(Ordering::Relaxed) => break,
                Some(ConsoleInput::Bytes(bytes)) => {
                    input.queued.fetch_sub(bytes.len(), Ordering::Relaxed);
                    keys = decoder.feed(&bytes);
                }
                Some(ConsoleInput::Resize(w, h)) => {
                    size = (w, h);
                    if let Some(terminal) = terminal.as_mut() {
                        sink.push(b"\x1b[2J");
                        let _ = terminal.resize(Rect::new(0, 0, w.max(1), h.max(1)));
                    }
                    // Loads the accounts of a taller page: a handful of reads.
                    app.resize(h);
                    redraw = true;
                }
            },
            _ = tokio::time::sleep_until(active + IDLE_RELEASE), if terminal.is_some() => {
                terminal = None;
            }
            _ = tokio::time::sleep(ESC_TIMEOUT), if esc_wait => keys.extend(decoder.flush()),
            // The client read the frame it was behind on: draw the next one.
            permit = frames.reserve(), if behind => match permit {
                Ok(permit) => {
                    behind = false;
                    active = tokio::time::Instant::now();
                    permit.send(next_frame(&mut terminal, &sink, size, &app));
                }
                Err(_) => break,
            },
            // Changes made elsewhere show up within a second; the cheap
            // check runs here, the reload on the blocking pool.
            _ = tick.tick() => if app.stale() {
                let result = tokio::task::spawn_blocking(move || {
                    let changed = app.refresh();
                    (app, changed)
                })
                .await;
                match result {
                    Ok((back, changed)) => {
                        app = back;
                        redraw = changed;
                    }
                    Err(_) => break,
                }
            }
        }
        if input.closed.load(Ordering::Relaxed) {
            // The client is gone: whatever it queued is not worth a cycle.
            break;
        }
        if !keys.is_empty() {
            let closed = input.closed.clone();
            let result = tokio::task::spawn_blocking(move || {
                let mut changed = false;
                for key in keys {
                    if closed.load(Ordering::Relaxed) {
                        break;
                    }
                    changed |= app.handle(key);
                    if app.quit {
                        break;
                    }
                }
                (app, changed)
            })
            .await;
            match result {
                Ok((back, changed)) => {
                    app = back;
                    redraw |= changed;
                }
                Err(_) => break,
            }
        }
        if app.quit {
            break;
        }
        if redraw || behind {
            active = tokio::time::Instant::now();
            match frames.try_reserve() {
                Ok(permit) => permit.send(next_frame(&mut terminal, &sink, size, &app)),
                Err(mpsc::error::TrySendError::Full(())) => {
                    // The client is not reading: no frame is queued behind
                    // the one it has not taken, and the buffers go back.
                    behind = true;
                    terminal = None;
                    sink.take();
                }
                Err(mpsc::error::TrySendError::Closed(())) => return,
            }
        }
    }
    sink.take();
    if input.closed.load(Ordering::Relaxed) {
        writer.abort();
        return;
    }
    // Leave the alternate screen after the last frame, in order; a client
    // that stopped reading gets five seconds, then the channel is closed.
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let _ = frames.send(LEAVE.to_vec()).await;
        drop(frames);
        let _ = writer.await;
        let _ = handle.exit_status_request(channel, 0).await;
        let _ = handle.eof(channel).await;
        let _ = handle.close(channel).await;
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::accounts::AccountInput;
    use crate::service::testkit::services;
    use crate::service::Source;

    #[test]
    fn the_client_wins_then_the_account_then_the_config() {
        let (s, _clock, admin) = services();
        let root = s.load("root").unwrap();
        let actor = Actor::account(&root, Source::Ssh("192.0.2.1".into()), None);
        let none = ConsoleOptions::default();
        // The example config sets `[console] theme = "default"`.
        assert_eq!(chosen_theme(&none, &s, &actor).as_deref(), Some("default"));
        let input = AccountInput {
            theme: Some("high-contrast".into()),
            ..Default::default()
        };
        s.update(&admin, "root", input).unwrap();
        assert_eq!(
            chosen_theme(&none, &s, &actor).as_deref(),
            Some("high-contrast")
        );
        let mut client = ConsoleOptions::default();
        client.env("TENURE_THEME", "light");
        assert_eq!(chosen_theme(&client, &s, &actor).as_deref(), Some("light"));
        // An unknown name is refused when set on an account.
        let bad = AccountInput {
            theme: Some("neon".into()),
            ..Default::default()
        };
        assert_eq!(s.update(&admin, "root", bad).unwrap_err().exit_code(), 2);
    }
}
