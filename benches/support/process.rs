//! Child processes that are stopped when the benchmark ends, also on an error.

use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// A child process, killed on drop unless it was stopped before.
pub struct Running {
    name: String,
    child: Option<Child>,
}

impl Running {
    /// Starts `command`, named `name` in messages.
    pub fn spawn(name: &str, mut command: Command) -> anyhow::Result<Running> {
        let child = command
            .spawn()
            .with_context(|| format!("cannot start {name} ({command:?})"))?;
        Ok(Running {
            name: name.to_string(),
            child: Some(child),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Fails when the process has exited.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        let Some(child) = self.child.as_mut() else {
            bail!("{} was already stopped", self.name);
        };
        if let Some(status) = child.try_wait()? {
            bail!("{} exited unexpectedly with {status}", self.name);
        }
        Ok(())
    }

    /// Sends SIGTERM and waits up to `grace` for the process to exit, then kills it.
    pub async fn terminate(&mut self, grace: Duration) -> anyhow::Result<ExitStatus> {
        let Some(mut child) = self.child.take() else {
            bail!("{} was already stopped", self.name);
        };
        if child.try_wait()?.is_none() {
            // std only sends SIGKILL; kill(1) sends SIGTERM so the process can shut down cleanly.
            let sent = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .context("cannot run kill(1)")?;
            if !sent.success() {
                eprintln!("kill -TERM {} failed for {}", child.id(), self.name);
            }
        }
        let deadline = Instant::now() + grace;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                eprintln!(
                    "{} did not exit within {} s of SIGTERM; killing it",
                    self.name,
                    grace.as_secs()
                );
                child.kill()?;
                return Ok(child.wait()?);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
