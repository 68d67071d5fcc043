//! `mln parse -S` / `-A` answers on the sample projects, as MLN scripts
//! expect them.

use std::path::Path;

use mln_lang::model::Project;
use mln_lang::query::{query_list, query_scalar, QueryError};
use mln_lang::resolve::resolve;
use mln_lang::syntax::{parse_path, parse_source, Limits};
use mln_lang::SourceMap;

fn sample(name: &str) -> Project {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../projects")
        .join(name);
    let mut sources = SourceMap::new();
    let ast = parse_path(&mut sources, &path, &Limits::default()).unwrap();
    resolve(&ast, &sources).unwrap().project
}

fn text(t: &str) -> Project {
    let mut sources = SourceMap::new();
    let ast = parse_source(
        &mut sources,
        Path::new("q.mln"),
        t.as_bytes(),
        &Limits::default(),
    )
    .unwrap();
    resolve(&ast, &sources).unwrap().project
}

#[test]
fn scalars_print_as_written() {
    let p = sample("superclass.mln");
    assert_eq!(query_scalar(&p, "/host/www2/memory").unwrap(), "256M");
    assert_eq!(query_scalar(&p, "/host/www1/memory").unwrap(), "192M");
    assert_eq!(query_scalar(&p, "host/www1/memory").unwrap(), "192M");
    assert_eq!(query_scalar(&p, "/global/project").unwrap(), "webfarm");
    assert_eq!(query_scalar(&p, "/global/domain").unwrap(), "example.org");
    assert_eq!(query_scalar(&p, "/host/www1/superclass").unwrap(), "web");
    assert_eq!(
        query_scalar(&p, "/host/www1/template").unwrap(),
        "debian-12.ext4"
    );
    assert_eq!(
        query_scalar(&p, "/host/www1/network/eth0/address").unwrap(),
        "10.1.0.11"
    );
    assert_eq!(
        query_scalar(&p, "/host/www1/network/eth0/netmask").unwrap(),
        "255.255.255.0"
    );
    assert_eq!(
        query_scalar(&p, "/host/monitor/network/eth0/switch").unwrap(),
        "front"
    );
    // Defaults answer too; unset values do not.
    let two = sample("two-hosts.mln");
    assert_eq!(query_scalar(&two, "/host/one/memory").unwrap(), "128M");
    assert_eq!(query_scalar(&two, "/host/one/boot_order").unwrap(), "99");
    // Flags answer `1` when set and nothing otherwise, as in MLN.
    assert!(matches!(
        query_scalar(&two, "/host/one/xen"),
        Err(QueryError::NotFound(_))
    ));
    assert_eq!(query_scalar(&two, "/host/one/uml").unwrap(), "1");
    assert!(matches!(
        query_scalar(&two, "/host/one/template"),
        Err(QueryError::NotFound(_))
    ));
    assert!(matches!(
        query_scalar(&two, "/host/three/memory"),
        Err(QueryError::NotFound(_))
    ));
    assert_eq!(query_scalar(&two, ""), Err(QueryError::EmptyPath));
}

#[test]
fn lists_print_one_item_per_line() {
    let p = sample("superclass.mln");
    assert_eq!(
        query_list(&p, "/host/www1/startup").unwrap(),
        [
            "echo \"booted www1.example.org\" > /etc/motd",
            "service nginx start"
        ]
    );
    assert!(matches!(
        query_scalar(&p, "/host/www1/startup"),
        Err(QueryError::NotAScalar(_))
    ));
    assert_eq!(
        query_list(&p, "/host").unwrap(),
        ["www1", "www2", "monitor"]
    );
    assert_eq!(query_list(&p, "/host/www1/network").unwrap(), ["eth0"]);
    assert_eq!(query_list(&p, "/switch").unwrap(), ["front"]);
    assert_eq!(query_list(&p, "/superclass").unwrap(), ["base", "web"]);
    assert_eq!(
        query_list(&p, "/switch/front/members").unwrap(),
        ["www1 eth0", "www2 eth0", "monitor eth0"]
    );
    assert_eq!(query_list(&p, "/host/www1/memory").unwrap(), ["192M"]);
    let a = sample("autoenum.mln");
    assert_eq!(query_list(&a, "/host").unwrap().len(), 12);
    assert_eq!(
        query_scalar(&a, "/host/pc12/network/eth0/address").unwrap(),
        "10.20.0.21"
    );
}

#[test]
fn superclasses_switches_and_generic_blocks() {
    let p = text(
        "global { project q; afterHostsStart { echo a; echo b } }
         superclass s { memory 2G; plugin { depth 3 } }
         switch lan { hub; service_host srv; tap tap0 }
         host h { superclass s; swap 512MB; lvm; users { bob $1$x$y /home/bob 1000 }
                  backup { when nightly; target nas { path /b } }
                  network eth0 { switch lan; address 10.0.0.1/24; mac 02:00:00:00:00:01 } }
         report { format html }",
    );
    assert_eq!(query_scalar(&p, "/superclass/s/memory").unwrap(), "2G");
    assert_eq!(query_scalar(&p, "/superclass/s/plugin/depth").unwrap(), "3");
    assert_eq!(query_scalar(&p, "/host/h/memory").unwrap(), "2G");
    assert_eq!(query_scalar(&p, "/host/h/swap").unwrap(), "512MB");
    assert_eq!(query_scalar(&p, "/host/h/lvm").unwrap(), "1");
    assert_eq!(query_scalar(&p, "/switch/lan/hub").unwrap(), "1");
    assert_eq!(query_scalar(&p, "/switch/lan/service_host").unwrap(), "srv");
    assert_eq!(query_scalar(&p, "/switch/lan/tap").unwrap(), "tap0");
    assert_eq!(
        query_scalar(&p, "/host/h/network/eth0/address").unwrap(),
        "10.0.0.1/24"
    );
    assert_eq!(
        query_scalar(&p, "/host/h/network/eth0/mac").unwrap(),
        "02:00:00:00:00:01"
    );
    assert_eq!(query_scalar(&p, "/host/h/backup/when").unwrap(), "nightly");
    assert_eq!(
        query_scalar(&p, "/host/h/backup/target/nas/path").unwrap(),
        "/b"
    );
    assert_eq!(
        query_list(&p, "/host/h/users").unwrap(),
        ["bob $1$x$y /home/bob 1000"]
    );
    assert_eq!(
        query_list(&p, "/global/afterHostsStart").unwrap(),
        ["echo a", "echo b"]
    );
    assert_eq!(query_scalar(&p, "/report/format").unwrap(), "html");
}
