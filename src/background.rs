//! Threads for background work (an export's compression and its day scan):
//! each runs at nice 10, so the threads that answer requests come first when
//! both want the cores, and an idle machine still gives it every core.

/// Lowers the calling thread to nice 10. Compression is background work that
/// takes every core it is given; at nice 10 it yields to the request-serving
/// threads (nice 0, 10× its scheduler weight) whenever they have work, so on a
/// busy machine an export slows down instead of the API's answers, and an
/// idle machine still gives it every core. Best effort: a system that refuses
/// leaves the priority as it was. Only Linux lowers a single thread this way.
pub fn lower_priority() {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 10) {
        tracing::debug!(error = %e, "could not lower a background thread's priority");
    }
}

/// Runs `f` on a thread of its own at background priority (see
/// [`lower_priority`]) and resolves to its result, or to None when it
/// panicked or no thread could be started. For an export's own long work (the
/// day's scan, the compressor's coordination): on tokio's blocking pool it
/// would run at the API's priority, and a lowered pool thread could never be
/// raised again for whatever runs on it next.
pub fn spawn<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> impl std::future::Future<Output = Option<T>> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let started = std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            lower_priority();
            let _ = tx.send(f());
        })
        .is_ok();
    async move {
        if started {
            rx.await.ok()
        } else {
            None
        }
    }
}
