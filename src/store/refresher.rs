//! Keeping the key ring in step with the key store: keys imported or removed
//! by the CLI or the admin UI are swapped in within 250 ms, at once on a
//! reload, and when a request names a key the ring does not have.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context as _;

use super::Db;
use crate::license::KeyRing;

/// Loads every key from the store into the ring.
pub fn load_keys(db: &Db, ring: &KeyRing) -> anyhow::Result<()> {
    let generation = db.key_generation()?;
    let content = db.content_keys().context("loading content keys")?;
    let com = db.com_keys().context("loading communication keys")?;
    let fairplay = db
        .fairplay_credentials()
        .context("loading the FairPlay credentials")?;
    ring.replace(generation, content, com);
    ring.set_fairplay(fairplay);
    Ok(())
}

enum RefreshCommand {
    Reload,
    /// Reload only if the store changed, then answer.
    Check(tokio::sync::oneshot::Sender<()>),
    Stop,
}

/// Notices keys changed by the CLI (or the admin UI) and swaps them into the
/// ring within 250 ms.
pub struct KeyRefresher {
    tx: Sender<RefreshCommand>,
    thread: JoinHandle<()>,
}

/// The refresher's channel, made before the key ring so that the ring is
/// built with its source (`KeyRing::new(link.store_check())`), then handed to
/// [`KeyRefresher::start`].
pub struct RefresherLink {
    tx: Sender<RefreshCommand>,
    rx: Receiver<RefreshCommand>,
}

impl Default for RefresherLink {
    fn default() -> Self {
        let (tx, rx) = channel();
        RefresherLink { tx, rx }
    }
}

impl RefresherLink {
    /// How the key ring asks the store for changes: the refresher checks and
    /// answers once the ring is up to date.
    pub fn store_check(&self) -> crate::license::StoreCheck {
        let checks = self.tx.clone();
        Box::new(move |answer| {
            let _ = checks.send(RefreshCommand::Check(answer));
        })
    }
}

impl KeyRefresher {
    pub fn start(db: Db, ring: Arc<KeyRing>, link: RefresherLink) -> anyhow::Result<KeyRefresher> {
        let RefresherLink { tx, rx } = link;
        let thread = std::thread::Builder::new()
            .name("berth-key-refresh".into())
            .spawn(move || loop {
                let mut answer = None;
                let forced = match rx.recv_timeout(Duration::from_millis(250)) {
                    Ok(RefreshCommand::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                    Ok(RefreshCommand::Reload) => true,
                    Ok(RefreshCommand::Check(reply)) => {
                        answer = Some(reply);
                        false
                    }
                    Err(RecvTimeoutError::Timeout) => false,
                };
                let changed = match db.key_generation() {
                    Ok(generation) => generation != ring.generation(),
                    Err(e) => {
                        tracing::warn!(error = %e, "could not check for key changes");
                        false
                    }
                };
                if forced || changed {
                    match load_keys(&db, &ring) {
                        Ok(()) => tracing::info!(
                            content_keys = ring.content_key_count(),
                            communication_keys = ring.com_key_count(),
                            "keys reloaded"
                        ),
                        Err(e) => tracing::error!(error = %format!("{e:#}"), "reloading keys failed; keeping the old ones"),
                    }
                }
                if let Some(answer) = answer {
                    let _ = answer.send(());
                }
            })
            .context("starting the key refresher")?;
        Ok(KeyRefresher { tx, thread })
    }

    pub fn reload(&self) {
        let _ = self.tx.send(RefreshCommand::Reload);
    }

    pub fn stop(self) {
        let _ = self.tx.send(RefreshCommand::Stop);
        let _ = self.thread.join();
    }
}
