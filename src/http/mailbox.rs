//! The actix side of the log writer's answers: each worker thread of the
//! license listener has a mailbox, a [`Courier`] the writer leaves its answers
//! with.
//!
//! A worker (actix's, one tokio `LocalSet` per thread) serves a task woken from
//! another thread only from a second queue, which it reads once every 31 tasks
//! or when it has nothing else to do. Answered from the writer thread, every
//! committed license went into that queue and waited behind newly arrived
//! requests: at 1,000 connections, tens of milliseconds. With a mailbox, the
//! writer wakes one task per worker per batch, and that task sends the answers
//! on the worker's own thread, which queues the waiting requests in the order
//! they were woken, with the rest of the worker's work.

use std::cell::RefCell;
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::Notify;

use crate::store::{Courier, Outcome, Reply};

/// Where the writer leaves a worker thread's answers, for that thread to send.
#[derive(Default)]
pub struct Mailbox {
    inbox: Mutex<Inbox>,
    ready: Notify,
}

#[derive(Default)]
struct Inbox {
    /// Set when the mailbox's task ends: from then on the writer answers directly.
    closed: bool,
    replies: Vec<(Reply, Outcome)>,
}

thread_local! {
    static MAILBOX: RefCell<Weak<Mailbox>> = const { RefCell::new(Weak::new()) };
}

/// Held by a mailbox's task: when the task ends (its `LocalSet` gone), closes
/// the mailbox and sends what was left in it, so no answer waits in a mailbox
/// nobody empties.
struct Postman(Arc<Mailbox>);

impl Postman {
    fn deliver(&self, closing: bool) {
        let replies = {
            let mut inbox = self.0.inbox.lock().expect("mailbox lock");
            inbox.closed |= closing;
            std::mem::take(&mut inbox.replies)
        };
        for (reply, result) in replies {
            let _ = reply.send(result);
        }
    }
}

impl Drop for Postman {
    fn drop(&mut self) {
        self.deliver(true);
    }
}

impl Courier for Mailbox {
    fn leave(&self, reply: Reply, outcome: Outcome) -> Result<(), (Reply, Outcome)> {
        let mut inbox = self.inbox.lock().expect("mailbox lock");
        if inbox.closed {
            return Err((reply, outcome));
        }
        inbox.replies.push((reply, outcome));
        Ok(())
    }

    fn wake(&self) {
        self.ready.notify_one();
    }
}

impl Mailbox {
    /// Gives the current thread a mailbox, emptied by a task on its `LocalSet`
    /// (call it from inside one, e.g. an actix worker's app factory); while
    /// that task runs, later calls do nothing. Threads without an open mailbox
    /// are answered by the writer directly.
    pub fn open_on_this_thread() {
        let open = MAILBOX.with(|m| {
            m.borrow()
                .upgrade()
                .is_some_and(|m| !m.inbox.lock().expect("mailbox lock").closed)
        });
        if open {
            return;
        }
        let mailbox = Arc::new(Mailbox::default());
        MAILBOX.with(|m| *m.borrow_mut() = Arc::downgrade(&mailbox));
        tokio::task::spawn_local(async move {
            let postman = Postman(mailbox);
            loop {
                postman.0.ready.notified().await;
                postman.deliver(false);
            }
        });
    }

    /// The calling thread's open mailbox, as the log writer's courier
    /// (`LogHandle::with_courier(Mailbox::current)`).
    pub fn current() -> Option<Arc<dyn Courier>> {
        MAILBOX
            .with(|m| m.borrow().upgrade())
            .map(|m| m as Arc<dyn Courier>)
    }
}
