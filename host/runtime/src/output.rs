//! The guest's stdout and stderr: captured into a bounded buffer and written to the
//! host log, scrubbed, when the call ends. Nothing reaches the terminal directly.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Bytes kept per call; the rest is counted and dropped.
const CAPACITY: usize = 64 * 1024;

/// Output written by the guest since the last drain.
#[derive(Default)]
pub struct OutputBuffer {
    bytes: Vec<u8>,
    dropped: usize,
}

impl OutputBuffer {
    /// Takes what was written, and how many bytes were dropped past the capacity.
    pub fn drain(&mut self) -> (Vec<u8>, usize) {
        let dropped = std::mem::take(&mut self.dropped);
        (std::mem::take(&mut self.bytes), dropped)
    }
}

/// A WASI stdout/stderr that appends to a shared [`OutputBuffer`].
#[derive(Clone)]
pub struct CapturedOutput(pub Arc<Mutex<OutputBuffer>>);

impl IsTerminal for CapturedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    // wasmtime-wasi's default adapter logs every write's bytes at DEBUG; this
    // stream appends directly, so guest output reaches no log unscrubbed.
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

impl CapturedOutput {
    fn append(&self, buf: &[u8]) {
        if let Ok(mut out) = self.0.lock() {
            let room = CAPACITY.saturating_sub(out.bytes.len());
            let keep = room.min(buf.len());
            out.bytes.extend_from_slice(&buf[..keep]);
            out.dropped += buf.len() - keep;
        }
    }
}

impl OutputStream for CapturedOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(CAPACITY)
    }
}

#[async_trait::async_trait]
impl Pollable for CapturedOutput {
    async fn ready(&mut self) {}
}

impl AsyncWrite for CapturedOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.append(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
