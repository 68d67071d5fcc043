//! A Xen machine under QEMU: booted, watched through its serial log,
//! killed by its pid on every path.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The CPU QEMU offers Xen: `qemu64` (with `-cpu max` dom0 crashes at
/// once), with `rdrand` (without it dom0's RNG blocks for minutes) and the
/// SIMD and AES instructions OpenSSH's ciphers use (without them ssh in
/// dom0, which carries every migration stream, runs its slowest code).
const CPU: &str = "qemu64,+rdrand,+ssse3,+sse4.1,+sse4.2,+popcnt,+aes,+pclmulqdq";

/// Printed by dom0 before the tests run.
pub const START: &str = "MLN-XEN-TEST-START";
/// Printed by dom0 after the tests, with their exit status (`rc=N`).
pub const EXIT: &str = "MLN-XEN-TEST-EXIT rc=";

/// What a machine is booted with besides the lab's `xen`, `vmlinuz` and
/// `dom0.cpio`.
pub struct Boot {
    /// The machine's name (its serial log is `NAME.serial.log`).
    pub name: String,
    /// QEMU's memory, MiB.
    pub memory_mib: u32,
    /// dom0's memory, MiB.
    pub dom0_mib: u32,
    /// Words added to dom0's kernel command line (no spaces or commas
    /// inside a word: they would end the multiboot module).
    pub dom0_words: Vec<String>,
    /// More QEMU arguments (devices).
    pub args: Vec<String>,
    /// `kvm` or `tcg`.
    pub accel: &'static str,
}

/// QEMU running a lab machine, killed (by its pid) and reaped when dropped.
pub struct Machine {
    child: Child,
    log: PathBuf,
    name: String,
    started: Instant,
}

/// How waiting for a machine ended, when not with what was waited for.
pub enum Outcome {
    /// The marker waited for appeared.
    Seen,
    /// dom0 printed the final marker; the tests exited with this status.
    Finished(i32),
    /// Xen or dom0 crashed: the offending line.
    Crashed(String),
    /// QEMU stopped.
    QemuExited(String),
    /// Nothing conclusive within the limit.
    TimedOut,
}

impl Drop for Machine {
    fn drop(&mut self) {
        self.kill();
    }
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

/// The accelerator for the lab's machines: KVM where `/dev/kvm` opens and
/// the CPU offers virtualisation to guests (nested), else TCG;
/// `MLN_XEN_LAB_ACCEL` (`kvm` or `tcg`) decides instead when set. (On
/// the machines seen so far `/dev/kvm` opens but KVM cannot run Xen: it
/// stops at an instruction its emulator lacks, and the CPU flags show no
/// `svm`/`vmx`.)
pub fn accelerator() -> &'static str {
    match std::env::var("MLN_XEN_LAB_ACCEL").as_deref() {
        Ok("kvm") => return "kvm",
        Ok("tcg") => return "tcg",
        _ => {}
    }
    let kvm = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    let nested = fs::read_to_string("/proc/cpuinfo").is_ok_and(|c| {
        c.lines()
            .filter(|l| l.starts_with("flags"))
            .any(|l| l.split_whitespace().any(|f| f == "svm" || f == "vmx"))
    });
    if kvm && nested {
        "kvm"
    } else {
        "tcg"
    }
}

impl Machine {
    /// Boot `xen` with `vmlinuz` as dom0 and `dom0.cpio` as its initramfs
    /// (all in `lab`).
    pub fn boot(lab: &Path, boot: &Boot) -> Result<Machine, String> {
        let log = lab.join(format!("{}.serial.log", boot.name));
        let out = File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("{}: {e}", log.display()))?;
        let mut dom0 = vec![
            "vmlinuz".to_string(),
            "console=hvc0".into(),
            "random.trust_cpu=on".into(),
        ];
        dom0.extend(boot.dom0_words.iter().cloned());
        if dom0.iter().any(|w| w.contains([' ', ','])) {
            return Err(format!("dom0 words {dom0:?}: no spaces or commas"));
        }
        let child = Command::new("qemu-system-x86_64")
            .args(["-accel", boot.accel, "-cpu", CPU])
            .args(["-m", &boot.memory_mib.to_string(), "-smp", "2"])
            .args(["-nographic", "-no-reboot", "-kernel", "xen"])
            .args([
                "-append",
                &format!(
                    "console=com1 com1=115200,8n1 dom0_mem={m}M,max:{m}M loglvl=warning \
                     guest_loglvl=warning random.trust_cpu=on",
                    m = boot.dom0_mib
                ),
            ])
            // Multiboot modules: relative names, as a space would start the
            // module's command line and a comma the next module.
            .args(["-initrd", &format!("{},dom0.cpio", dom0.join(" "))])
            .args(&boot.args)
            .current_dir(lab)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| {
                format!("cannot run qemu-system-x86_64 (apt-get install qemu-system-x86): {e}")
            })?;
        eprintln!(
            "xen-test: {} booting Xen under QEMU ({}), pid {}; serial log {}",
            boot.name,
            boot.accel,
            child.id(),
            log.display()
        );
        Ok(Machine {
            child,
            log,
            name: boot.name.clone(),
            started: Instant::now(),
        })
    }

    /// QEMU's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The machine's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the serial console printed so far.
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// The serial log's path.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Whether QEMU still runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Kill QEMU (by its pid) and reap it.
    pub fn kill(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }

    /// Wait until the log shows `marker` (never, when empty), the final
    /// test marker, a crash, QEMU's exit or `timeout`.
    pub fn wait_for(&mut self, marker: &str, timeout: Duration) -> Outcome {
        let start = Instant::now();
        loop {
            let text = self.log();
            if let Some(rc) = exit_status(&text) {
                // Give dom0's poweroff a moment to stop QEMU by itself.
                let until = Instant::now() + Duration::from_secs(10);
                while Instant::now() < until && self.running() {
                    std::thread::sleep(Duration::from_millis(200));
                }
                return Outcome::Finished(rc);
            }
            if !marker.is_empty() && text.contains(marker) {
                eprintln!(
                    "xen-test: {} shows {marker} after {:.0?}",
                    self.name,
                    self.started.elapsed()
                );
                return Outcome::Seen;
            }
            if let Some(line) = fatal_line(&text) {
                std::thread::sleep(Duration::from_secs(2)); // let the backtrace reach the log
                return Outcome::Crashed(line);
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Outcome::QemuExited(status.to_string());
            }
            if start.elapsed() > timeout {
                return Outcome::TimedOut;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// The last `n` lines of `log`.
pub fn log_tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .join("\n")
        .replace('\r', "")
}

/// `outcome` as an error, with the end of the machine's serial log.
pub fn failure(m: &Machine, what: &str, outcome: Outcome, timeout: Duration) -> String {
    let why = match outcome {
        Outcome::Seen => "the marker appeared".to_string(),
        Outcome::Finished(rc) => format!("dom0 finished early (rc={rc})"),
        Outcome::Crashed(line) => format!("crash: {line}"),
        Outcome::QemuExited(status) => format!("QEMU stopped ({status})"),
        Outcome::TimedOut => format!("nothing within {timeout:?}; QEMU killed"),
    };
    format!(
        "{}: {what}: {why}\n--- {} (end) ---\n{}",
        m.name(),
        m.log_path().display(),
        log_tail(&m.log(), 150)
    )
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
