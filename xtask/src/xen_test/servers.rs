//! The lab's two Xen servers as `mln` reaches them: OpenSSH's sshd in
//! each dom0 with a host key of its own, a client key the managing
//! machine (this one) and each dom0 log in with (dom0s log into each
//! other for `xl migrate`), an ssh configuration naming the servers, and
//! the LAN the dom0s share.
//!
//! Every dom0 boots from the same initramfs: its /init picks its name and
//! LAN address from its kernel command line (`mln.lab=NAME
//! mln.lab.ip=ADDR`), then its host key.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{copy, io_err, run_checked};

/// One lab server.
#[derive(Debug, Clone)]
pub struct Server {
    /// Its name, as `mln` projects' `service_host` and ssh know it.
    pub name: &'static str,
    /// Its dom0's address on the LAN between the servers (`xenbr0`).
    pub lan_ip: &'static str,
    /// The last byte of its NICs' MACs.
    pub mac_byte: u8,
    /// The port on 127.0.0.1 QEMU forwards to its sshd.
    pub ssh_port: u16,
}

/// The LAN's prefix length.
pub const LAN_PREFIX: u8 = 24;

/// The two servers, with free local ports for their sshd.
pub fn two() -> Result<Vec<Server>, String> {
    Ok(vec![
        Server {
            name: "server-a",
            lan_ip: "10.77.0.1",
            mac_byte: 0x0a,
            ssh_port: free_port()?,
        },
        Server {
            name: "server-b",
            lan_ip: "10.77.0.2",
            mac_byte: 0x0b,
            ssh_port: free_port()?,
        },
    ])
}

/// A port on 127.0.0.1 nothing listens on now (the kernel's choice).
fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("local port: {e}"))
}

impl Server {
    /// The management NIC's MAC (QEMU's user network, sshd).
    pub fn mgmt_mac(&self) -> String {
        format!("52:54:00:4d:01:{:02x}", self.mac_byte)
    }

    /// The LAN NIC's MAC (the shared switch; bridged as `xenbr0`).
    pub fn lan_mac(&self) -> String {
        format!("52:54:00:4d:02:{:02x}", self.mac_byte)
    }

    /// Words for dom0's kernel command line.
    pub fn dom0_words(&self) -> Vec<String> {
        vec![
            format!("mln.lab={}", self.name),
            format!("mln.lab.ip={}/{LAN_PREFIX}", self.lan_ip),
            format!("mln.lab.mgmt={}", self.mgmt_mac()),
            format!("mln.lab.lan={}", self.lan_mac()),
        ]
    }
}

/// The keys of a lab, made once per lab folder.
#[derive(Debug, Clone)]
pub struct Keys {
    dir: PathBuf,
}

fn keygen(path: &Path, comment: &str) -> Result<(), String> {
    if path.exists() {
        return Ok(());
    }
    run_checked(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
            .arg(path),
    )
    .map(drop)
}

fn public(path: &Path) -> Result<String, String> {
    let p = path.with_extension("pub");
    let text = fs::read_to_string(&p).map_err(io_err(&p))?;
    // "TYPE KEY COMMENT": known_hosts wants the first two.
    Ok(text
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" "))
}

fn write_mode(path: &Path, text: &str, mode: u32) -> Result<(), String> {
    if let Some(d) = path.parent() {
        fs::create_dir_all(d).map_err(io_err(d))?;
    }
    fs::write(path, text).map_err(io_err(path))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io_err(path))
}

impl Keys {
    /// The client key and each server's host key under `dir`.
    pub fn make(dir: &Path, servers: &[Server]) -> Result<Keys, String> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        keygen(&dir.join("id_ed25519"), "mln-xen-lab")?;
        for s in servers {
            keygen(&dir.join(format!("host-{}", s.name)), s.name)?;
        }
        Ok(Keys {
            dir: dir.to_path_buf(),
        })
    }

    fn client(&self) -> PathBuf {
        self.dir.join("id_ed25519")
    }

    fn host(&self, s: &Server) -> PathBuf {
        self.dir.join(format!("host-{}", s.name))
    }

    /// known_hosts lines naming each server by `names(server)`.
    fn known_hosts(
        &self,
        servers: &[Server],
        names: impl Fn(&Server) -> String,
    ) -> Result<String, String> {
        let mut text = String::new();
        for s in servers {
            text.push_str(&format!("{} {}\n", names(s), public(&self.host(s))?));
        }
        Ok(text)
    }

    /// This machine's ssh configuration for the lab (`MLN_SSH_CONFIG`):
    /// each server by name, on its forwarded port, with the lab's key and
    /// known hosts only.
    pub fn client_config(&self, servers: &[Server]) -> Result<PathBuf, String> {
        let known = self.dir.join("known_hosts");
        write_mode(
            &known,
            &self.known_hosts(servers, |s| s.name.to_string())?,
            0o644,
        )?;
        let mut cfg = String::new();
        for s in servers {
            cfg.push_str(&format!(
                "Host {}\n    HostName 127.0.0.1\n    Port {}\n    HostKeyAlias {}\n",
                s.name, s.ssh_port, s.name
            ));
        }
        cfg.push_str(&format!(
            "Host *\n    User root\n    IdentityFile {}\n    IdentitiesOnly yes\n    \
             UserKnownHostsFile {}\n    StrictHostKeyChecking yes\n    BatchMode yes\n    \
             ConnectTimeout 10\n    ServerAliveInterval 5\n    ServerAliveCountMax 3\n    \
             LogLevel ERROR\n",
            self.client().display(),
            known.display()
        ));
        let path = self.dir.join("ssh_config");
        write_mode(&path, &cfg, 0o644)?;
        Ok(path)
    }

    /// Put sshd, ssh and their configuration into dom0's root `dom0`;
    /// returns the programs whose libraries dom0 also needs.
    pub fn install(&self, dom0: &Path, servers: &[Server]) -> Result<Vec<PathBuf>, String> {
        let mut programs = Vec::new();
        for (from, to) in [
            ("/usr/sbin/sshd", "usr/sbin/sshd"),
            ("/usr/bin/ssh", "usr/bin/ssh"),
        ] {
            if !Path::new(from).exists() {
                return Err(format!(
                    "{from} is missing on this machine (apt-get install openssh-server openssh-client)"
                ));
            }
            copy(Path::new(from), &dom0.join(to))?;
            programs.push(dom0.join(to));
        }
        let etc = dom0.join("etc");
        write_mode(
            &etc.join("passwd"),
            "root:x:0:0:root:/root:/bin/sh\nsshd:x:100:65534::/run/sshd:/bin/false\n\
             nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
            0o644,
        )?;
        write_mode(&etc.join("group"), "root:x:0:\nnogroup:x:65534:\n", 0o644)?;
        write_mode(
            &etc.join("shadow"),
            "root:*:19000:0:99999:7:::\nsshd:*:19000::::::\n",
            0o600,
        )?;
        write_mode(
            &etc.join("ssh/sshd_config"),
            "HostKey /etc/ssh/ssh_host_ed25519_key\nPermitRootLogin prohibit-password\n\
             PubkeyAuthentication yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             UsePAM no\nPermitUserEnvironment yes\nPidFile /run/sshd.pid\nUseDNS no\n\
             MaxStartups 100\nMaxSessions 100\nLogLevel ERROR\n",
            0o644,
        )?;
        for s in servers {
            let key = fs::read_to_string(self.host(s)).map_err(io_err(&self.host(s)))?;
            write_mode(&etc.join(format!("ssh/keys/{}", s.name)), &key, 0o600)?;
        }
        let hosts: String = servers
            .iter()
            .map(|s| format!("{} {}\n", s.lan_ip, s.name))
            .collect();
        write_mode(
            &etc.join("hosts"),
            &format!("127.0.0.1 localhost\n{hosts}"),
            0o644,
        )?;
        let ssh = dom0.join("root/.ssh");
        let client = fs::read_to_string(self.client()).map_err(io_err(&self.client()))?;
        write_mode(&ssh.join("id_ed25519"), &client, 0o600)?;
        write_mode(
            &ssh.join("authorized_keys"),
            &format!("{}\n", public(&self.client())?),
            0o600,
        )?;
        let known = self.known_hosts(servers, |s| format!("{},{}", s.name, s.lan_ip))?;
        write_mode(&ssh.join("known_hosts"), &known, 0o644)?;
        // What an ssh session (the agent, `xl migrate-receive`) runs with.
        write_mode(
            &ssh.join("environment"),
            "PATH=/bin:/sbin:/usr/bin:/usr/sbin:/usr/lib/xen-4.17/bin\n\
             LD_LIBRARY_PATH=/lib/x86_64-linux-gnu\nHOME=/root\n",
            0o600,
        )?;
        write_mode(
            &ssh.join("config"),
            "Host *\n    StrictHostKeyChecking yes\n    BatchMode yes\n    ConnectTimeout 10\n",
            0o600,
        )?;
        fs::set_permissions(&ssh, fs::Permissions::from_mode(0o700)).map_err(io_err(&ssh))?;
        Ok(programs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_server_has_its_own_macs_and_a_kernel_line_without_spaces() {
        let servers = two().unwrap();
        assert_ne!(servers[0].ssh_port, 0);
        assert_ne!(servers[0].lan_mac(), servers[1].lan_mac());
        assert_ne!(servers[0].mgmt_mac(), servers[0].lan_mac());
        let words = servers[1].dom0_words();
        assert!(words.contains(&"mln.lab=server-b".to_string()));
        assert!(words.contains(&"mln.lab.ip=10.77.0.2/24".to_string()));
        assert!(words.iter().all(|w| !w.contains([' ', ','])));
    }
}
