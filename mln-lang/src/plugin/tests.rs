use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::*;

const LAB: &str = "global { project lab }
switch lan { }
host web { network eth0 { switch lan; address 10.0.0.1 } startup { echo own } }
host db { network eth0 { switch lan; address 10.0.0.2 } }
";

fn program(dir: &Path, name: &str, body: &str) {
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn plugins_in(dir: &Path) -> Plugins {
    Plugins::discover(&PluginFolders {
        given: vec![dir.to_path_buf()],
        ..Default::default()
    })
    .unwrap()
}

#[test]
fn guest_config_output_joins_each_guests_configuration_in_plugin_order() {
    let t = tempfile::tempdir().unwrap();
    program(
        t.path(),
        "b-motd",
        r#"cat >/dev/null
printf '{"files":[{"path":"/etc/motd","content":"%s of %s\\n","mode":"0600"}],"startup":["echo motd"]}' "$MLN_HOST" "$MLN_PROJECT""#,
    );
    program(
        t.path(),
        "a-warn",
        r#"cat >/dev/null; echo '{"diagnostics":[{"severity":"warning","message":"just so"}]}'"#,
    );
    program(t.path(), "c-quiet", "cat >/dev/null");
    let checked = crate::load_str("lab.mln", LAB).unwrap();
    let mut desired = DesiredProject::from_project(checked.project());
    let notes = plugins_in(t.path())
        .guest_configs(checked.project(), &mut desired)
        .unwrap();
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert_eq!(
        notes[0].to_string(),
        "plugin a-warn at guest_config for host db: just so"
    );
    let web = &desired.hosts["web"].guest;
    assert_eq!(web.startup, ["echo own"]);
    assert_eq!(web.plugin_startup, ["echo motd"]);
    assert_eq!(
        web.written,
        [WrittenFile {
            path: "/etc/motd".into(),
            content: "web of lab\n".into(),
            mode: Some(0o600),
            plugin: "b-motd".into(),
        }]
    );
    assert_eq!(desired.hosts["db"].guest.written[0].content, "db of lab\n");
}

#[test]
fn the_request_carries_the_project_and_host_with_passwords_hashed() {
    let t = tempfile::tempdir().unwrap();
    let seen = t.path().join("seen");
    program(
        t.path(),
        "spy",
        &format!("cat > '{}'; exit 0", seen.display()),
    );
    let text = "global { project lab }\nhost web { root_passwd secret }\n";
    let checked = crate::load_str("lab.mln", text).unwrap();
    let mut desired = DesiredProject::from_project(checked.project());
    plugins_in(t.path())
        .guest_configs(checked.project(), &mut desired)
        .unwrap();
    let request: Request = serde_json::from_slice(&std::fs::read(&seen).unwrap()).unwrap();
    assert_eq!(request.point, Point::GuestConfig);
    assert_eq!(request.project["name"], "lab");
    let host = request.host.unwrap();
    assert_eq!(host["name"], "web");
    let hash = host["root_passwd"].as_str().unwrap();
    assert!(
        hash.starts_with("$6$") && !hash.contains("secret"),
        "{hash}"
    );
}

#[test]
fn an_error_diagnostic_or_a_failing_program_stops_with_its_message() {
    let t = tempfile::tempdir().unwrap();
    program(
        t.path(),
        "guard",
        r#"cat >/dev/null
[ "$1" = removing ] && { echo "backups of $MLN_PROJECT still running" >&2; exit 4; }
[ "$1" = resolved ] && echo '{"diagnostics":[{"severity":"error","message":"no puppet block"}]}'
exit 0"#,
    );
    let checked = crate::load_str("lab.mln", LAB).unwrap();
    let plugins = plugins_in(t.path());
    let e = plugins.resolved(checked.project()).unwrap_err();
    assert!(matches!(e, PluginError::Refused { .. }));
    assert_eq!(e.to_string(), "plugin guard at resolved: no puppet block");
    let e = plugins.removing(checked.project()).unwrap_err().to_string();
    assert!(
        e.starts_with("plugin guard at removing failed (exit status: 4)")
            && e.ends_with("backups of lab still running"),
        "{e}"
    );
    assert!(plugins.built(checked.project()).unwrap().is_empty());
}

#[test]
fn hostsfile_is_built_in_and_on_only_where_the_project_names_it() {
    let on = "global { project lab; plugins { hostsFile } }
switch lan { }
host a { network eth0 { switch lan; address 10.0.0.1 } }
host b { network eth0 { switch lan; address 10.0.0.2 } }
";
    let plugins = Plugins::default();
    assert_eq!(plugins.list()[0].name, "hostsFile");
    let checked = crate::load_str("on.mln", on).unwrap();
    let mut desired = DesiredProject::from_project(checked.project());
    plugins
        .guest_configs(checked.project(), &mut desired)
        .unwrap();
    let w = &desired.hosts["a"].guest.written;
    assert_eq!(w[0].path, "/etc/hosts");
    assert_eq!(w[0].plugin, "hostsFile");
    assert!(w[0].content.contains("10.0.0.2\tb\n"), "{}", w[0].content);
    let checked = crate::load_str("lab.mln", LAB).unwrap();
    let mut desired = DesiredProject::from_project(checked.project());
    plugins
        .guest_configs(checked.project(), &mut desired)
        .unwrap();
    assert!(desired.hosts["web"].guest.written.is_empty());
}

#[test]
fn a_program_named_like_a_builtin_replaces_it() {
    let t = tempfile::tempdir().unwrap();
    program(t.path(), "hostsFile", "cat >/dev/null");
    let plugins = plugins_in(t.path());
    assert_eq!(plugins.list().len(), 1);
    assert_eq!(plugins.list()[0].origin, Origin::Given);
    let checked = crate::load_str(
        "on.mln",
        "global { project lab; plugins { hostsFile } }\nhost a { }\n",
    )
    .unwrap();
    let mut desired = DesiredProject::from_project(checked.project());
    plugins
        .guest_configs(checked.project(), &mut desired)
        .unwrap();
    assert!(desired.hosts["a"].guest.written.is_empty());
}
