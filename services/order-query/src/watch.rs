//! The feed of projected changes behind WatchOrder: one broadcast channel for the whole
//! service, fed by the projector after each commit, so a watcher never polls the database.

use std::sync::Arc;

use mercato::pb::orderquery::v1::OrderView;
use tokio::sync::{Mutex, MutexGuard, broadcast};

/// How many changes a slow watcher may fall behind before it re-reads the order.
pub const FEED_CAPACITY: usize = 1024;

/// New order states, as projected.
#[derive(Clone)]
pub struct OrderFeed {
    tx: broadcast::Sender<Arc<OrderView>>,
    /// Held while a state is read and published (projector), and while a new watcher
    /// subscribes and reads its first state: a watcher then never receives a state older
    /// than the one it started from, nor misses one in between.
    serial: Arc<Mutex<()>>,
}

impl OrderFeed {
    /// A feed keeping up to `capacity` changes per lagging receiver.
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity);
        Self {
            tx,
            serial: Arc::new(Mutex::new(())),
        }
    }

    /// Excludes other readers-and-publishers until the guard is dropped.
    pub async fn serialize(&self) -> MutexGuard<'_, ()> {
        self.serial.lock().await
    }

    /// Whether anyone is watching (the projector skips work otherwise).
    pub fn is_watched(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    /// Announces the new state of an order.
    pub fn publish(&self, view: OrderView) {
        // No receiver is not an error: nobody is watching right now.
        let _ = self.tx.send(Arc::new(view));
    }

    /// Every change from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<OrderView>> {
        self.tx.subscribe()
    }
}
