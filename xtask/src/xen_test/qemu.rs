//! Boot the lab under QEMU (TCG) and watch its serial log.

use std::fs::{self, File};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Printed by dom0 before the tests run.
pub const START: &str = "MLN-XEN-TEST-START";
/// Printed by dom0 after the tests, with their exit status (`rc=N`).
pub const EXIT: &str = "MLN-XEN-TEST-EXIT rc=";

/// QEMU, killed (by its pid) and reaped when dropped: on every exit path.
struct Qemu(Child);

impl Drop for Qemu {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// How a boot ended.
pub enum Outcome {
    /// dom0 printed the final marker; the tests exited with this status.
    Finished(i32),
    /// Xen or dom0 crashed: the offending line.
    Crashed(String),
    /// QEMU stopped before the final marker.
    QemuExited(String),
    /// Nothing conclusive within the limit.
    TimedOut,
}

/// A line that means the lab is dead: a Xen panic or crash, a dom0 panic.
fn fatal_line(log: &str) -> Option<String> {
    log.lines()
        .find(|l| {
            (l.contains("(XEN)") && (l.contains("Panic") || l.contains("crashed")))
                || l.contains("Kernel panic")
        })
        .map(str::to_string)
}

/// The test exit status once the final marker is in `log`.
fn exit_status(log: &str) -> Option<i32> {
    let at = log.find(EXIT)? + EXIT.len();
    let digits: String = log[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '-')
        .collect();
    digits.parse().ok()
}

/// Boot `xen` with `vmlinuz` as dom0 and `dom0.cpio` as its initramfs (all
/// in `lab`), logging the serial console to `log`, until the final marker,
/// a crash, QEMU's exit, or `timeout`.
pub fn boot(lab: &Path, log: &Path, timeout: Duration) -> Result<Outcome, String> {
    let out = File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let err = out
        .try_clone()
        .map_err(|e| format!("{}: {e}", log.display()))?;
    let child = Command::new("qemu-system-x86_64")
        .args([
            "-accel",
            "tcg",
            "-cpu",
            "qemu64,+rdrand",
            "-m",
            "2048",
            "-smp",
            "2",
        ])
        .args(["-nographic", "-no-reboot"])
        .args(["-kernel", "xen"])
        .args([
            "-append",
            "console=com1 com1=115200,8n1 dom0_mem=768M,max:768M loglvl=warning \
             guest_loglvl=warning random.trust_cpu=on",
        ])
        // Multiboot modules: relative names, as a space would start the
        // module's command line and a comma the next module.
        .args([
            "-initrd",
            "vmlinuz console=hvc0 random.trust_cpu=on,dom0.cpio",
        ])
        .current_dir(lab)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| {
            format!("cannot run qemu-system-x86_64 (apt-get install qemu-system-x86): {e}")
        })?;
    let mut qemu = Qemu(child);
    eprintln!(
        "xen-test: QEMU pid {} booting Xen; serial log {}",
        qemu.0.id(),
        log.display()
    );

    let start = Instant::now();
    let mut started = false;
    loop {
        let text = String::from_utf8_lossy(&fs::read(log).unwrap_or_default()).into_owned();
        if !started && text.contains(START) {
            started = true;
            eprintln!(
                "xen-test: dom0 up after {:.0?}; tests running",
                start.elapsed()
            );
        }
        if let Some(rc) = exit_status(&text) {
            // Give dom0's poweroff a moment to stop QEMU by itself.
            let until = Instant::now() + Duration::from_secs(10);
            while Instant::now() < until {
                if let Ok(Some(_)) = qemu.0.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            return Ok(Outcome::Finished(rc));
        }
        if let Some(line) = fatal_line(&text) {
            std::thread::sleep(Duration::from_secs(2)); // let the backtrace reach the log
            return Ok(Outcome::Crashed(line));
        }
        if let Ok(Some(status)) = qemu.0.try_wait() {
            return Ok(Outcome::QemuExited(status.to_string()));
        }
        if start.elapsed() > timeout {
            return Ok(Outcome::TimedOut);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_marker_gives_the_exit_status() {
        assert_eq!(exit_status("x\nMLN-XEN-TEST-EXIT rc=0\r\n"), Some(0));
        assert_eq!(exit_status("MLN-XEN-TEST-EXIT rc=101\n"), Some(101));
        assert_eq!(exit_status("MLN-XEN-TEST-START\n"), None);
    }

    #[test]
    fn xen_and_dom0_crashes_are_fatal_but_test_output_is_not() {
        assert!(fatal_line("(XEN) Hardware Dom0 crashed: rebooting machine").is_some());
        assert!(fatal_line("(XEN) Panic on CPU 0:").is_some());
        assert!(fatal_line("[    3.1] Kernel panic - not syncing: init").is_some());
        assert!(fatal_line("life: state Crashed, domain crashed in test").is_none());
    }
}
