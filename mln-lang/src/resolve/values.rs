//! Reading typed values out of statement text: sizes, numbers, addresses,
//! netmasks, MAC addresses, flags; and the "did you mean" suggestion.

use std::net::IpAddr;

use crate::model::Address;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * 1024 * 1024;

/// Why a value could not be read; the caller turns it into a diagnostic
/// with the right code and span.
pub(crate) type Reason = String;

/// A size: a number with an optional unit (`K`, `M`, `G` binary; `KB`,
/// `kB`, `MB`, `GB` decimal; `b` 512-byte blocks). A bare number means
/// megabytes (MiB), as MLN read it for `memory` and `size`.
pub(crate) fn parse_size(text: &str) -> Result<u64, Reason> {
    let t = text.trim();
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(format!("`{t}` is not a size"));
    }
    let (num, unit) = t.split_at(digits);
    let unit = unit.trim_start();
    let mult = match unit {
        "" | "M" | "m" => MIB,
        "K" | "k" => KIB,
        "G" | "g" => GIB,
        "KB" | "kB" => 1000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "b" => 512,
        _ => return Err(format!("`{unit}` is not a size unit")),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("`{t}` is too large"))
}

/// The shortest size text that reads back as exactly `bytes`; sizes that
/// no unit expresses exactly (not a multiple of 512 or 1000) are rounded up
/// to whole 512-byte blocks.
pub(crate) fn format_size(bytes: u64) -> String {
    let units: [(u64, &str); 7] = [
        (GIB, "G"),
        (1_000_000_000, "GB"),
        (MIB, "M"),
        (1_000_000, "MB"),
        (KIB, "K"),
        (1000, "KB"),
        (512, "b"),
    ];
    if bytes == 0 {
        return "0M".to_string();
    }
    for (mult, unit) in units {
        if bytes % mult == 0 {
            return format!("{}{unit}", bytes / mult);
        }
    }
    format!("{}b", bytes.div_ceil(512))
}

/// A non-negative decimal number that fits a `u32`.
pub(crate) fn parse_u32(text: &str) -> Result<u32, Reason> {
    let t = text.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("`{t}` is not a whole number"));
    }
    t.parse::<u32>().map_err(|_| format!("`{t}` is too large"))
}

/// A CPU list as Xen's `cpus=` takes it: numbers and ranges separated by
/// commas (`1`, `0-3`, `0,2-5`), optionally in double quotes. The CPUs in
/// order, each once.
///
/// ```
/// use mln_lang::resolve::parse_cpu_list;
/// assert_eq!(parse_cpu_list("0,2-4").unwrap(), [0, 2, 3, 4]);
/// assert_eq!(parse_cpu_list("\"1\"").unwrap(), [1]);
/// assert!(parse_cpu_list("3-1").is_err());
/// assert!(parse_cpu_list("all").is_err());
/// ```
pub fn parse_cpu_list(text: &str) -> Result<Vec<u32>, String> {
    /// No machine Xen runs on has more.
    const MAX_CPU: u32 = 4095;
    let t = text.trim().trim_matches('"').trim();
    let bad = || {
        format!("`{t}` is not a CPU list: write CPU numbers and ranges, e.g. `1`, `0-3`, `0,2-3`")
    };
    let mut cpus = std::collections::BTreeSet::new();
    for part in t.split(',') {
        let (lo, hi) = match part.trim().split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part.trim(), part.trim()),
        };
        let (lo, hi) = (
            parse_u32(lo).map_err(|_| bad())?,
            parse_u32(hi).map_err(|_| bad())?,
        );
        if lo > hi || hi > MAX_CPU {
            return Err(bad());
        }
        cpus.extend(lo..=hi);
    }
    Ok(cpus.into_iter().collect())
}

/// A flag: `1`/`yes`/`true`/`on` or `0`/`no`/`false`/`off`.
pub(crate) fn parse_bool(text: &str) -> Result<bool, Reason> {
    // Compared without lower-casing a copy: every host's platform flag
    // passes through here.
    let t = text.trim();
    let is = |words: [&str; 4]| words.iter().any(|w| t.eq_ignore_ascii_case(w));
    if is(["1", "yes", "true", "on"]) {
        Ok(true)
    } else if is(["0", "no", "false", "off"]) {
        Ok(false)
    } else {
        Err(format!(
            "`{}` is not a flag value (use 1 or 0)",
            t.to_ascii_lowercase()
        ))
    }
}

/// An IPv4 or IPv6 address.
pub(crate) fn parse_ip(text: &str) -> Result<IpAddr, Reason> {
    text.trim()
        .parse::<IpAddr>()
        .map_err(|_| format!("`{}` is not an IP address", text.trim()))
}

/// `dhcp`, an address, or an address with a prefix length (`10.0.0.1/24`).
pub(crate) fn parse_address(text: &str) -> Result<Address, Reason> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("dhcp") {
        return Ok(Address::Dhcp);
    }
    match t.split_once('/') {
        None => Ok(Address::Static {
            addr: parse_ip(t)?,
            prefix: None,
        }),
        Some((a, p)) => {
            let addr = parse_ip(a)?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let prefix = parse_u32(p)
                .ok()
                .filter(|&p| p <= max)
                .and_then(|p| u8::try_from(p).ok())
                .ok_or_else(|| format!("`{p}` is not a prefix length (0 to {max})"))?;
            Ok(Address::Static {
                addr,
                prefix: Some(prefix),
            })
        }
    }
}

/// A netmask: an address whose bits are ones then zeros.
pub(crate) fn parse_netmask(text: &str) -> Result<IpAddr, Reason> {
    let addr = parse_ip(text)?;
    let bits = match addr {
        IpAddr::V4(a) => u128::from(u32::from(a)) << 96,
        IpAddr::V6(a) => u128::from(a),
    };
    // Contiguous: after the leading ones, nothing but zeros.
    if bits.leading_ones() + bits.trailing_zeros() < 128 {
        return Err(format!(
            "`{}` is not a netmask (ones then zeros)",
            text.trim()
        ));
    }
    Ok(addr)
}

/// A MAC address (`aa:bb:cc:dd:ee:ff` or with `-`), returned lower case
/// with colons.
pub(crate) fn parse_mac(text: &str) -> Result<String, Reason> {
    let t = text.trim();
    let parts: Vec<&str> = t.split([':', '-']).collect();
    let ok = parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()));
    if ok {
        Ok(parts.join(":").to_ascii_lowercase())
    } else {
        Err(format!("`{t}` is not a MAC address (six hex pairs)"))
    }
}

/// The candidate closest to `word`, when it is close enough to be the
/// likely intent (edit distance, transpositions counting as one).
pub(crate) fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .iter()
        .map(|c| (distance(word, c), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Optimal string alignment distance (Levenshtein plus adjacent
/// transpositions), case-insensitive.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    if a.len().abs_diff(b.len()) > 3 || a.len() > 64 {
        return usize::MAX;
    }
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for i in 0..=a.len() {
        d[i * w] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(w) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[(i - 1) * w + j] + 1)
                .min(d[i * w + j - 1] + 1)
                .min(d[(i - 1) * w + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[(i - 2) * w + j - 2] + 1);
            }
            d[i * w + j] = v;
        }
    }
    d[a.len() * w + b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_the_reference_units() {
        assert_eq!(parse_size("256M"), Ok(256 * MIB));
        assert_eq!(parse_size("256"), Ok(256 * MIB));
        assert_eq!(parse_size("4K"), Ok(4096));
        assert_eq!(parse_size("2G"), Ok(2 * GIB));
        assert_eq!(parse_size("5KB"), Ok(5000));
        assert_eq!(parse_size("5kB"), Ok(5000));
        assert_eq!(parse_size("3MB"), Ok(3_000_000));
        assert_eq!(parse_size("1GB"), Ok(1_000_000_000));
        assert_eq!(parse_size("8b"), Ok(4096));
        assert_eq!(parse_size("64 M"), Ok(64 * MIB));
        assert!(parse_size("12Q").is_err());
        assert!(parse_size("M").is_err());
        assert!(parse_size("-5M").is_err());
        assert!(parse_size("99999999999999999999G").is_err());
        assert!(parse_size("18446744073709551615G").is_err());
    }

    #[test]
    fn formatted_sizes_read_back() {
        for b in [MIB, 96 * MIB, GIB, 5000, 4096, 512, 3_000_000, 1536, 0] {
            assert_eq!(parse_size(&format_size(b)), Ok(b), "{b}");
        }
        assert_eq!(format_size(256 * MIB), "256M");
    }

    #[test]
    fn addresses_and_masks() {
        assert_eq!(parse_address("DHCP"), Ok(Address::Dhcp));
        assert!(matches!(
            parse_address("10.0.0.1/24"),
            Ok(Address::Static {
                prefix: Some(24),
                ..
            })
        ));
        assert!(parse_address("10.0.0.1/33").is_err());
        assert!(parse_address("fe80::1/64").is_ok());
        assert!(parse_address("10.0.0.256").is_err());
        assert!(parse_netmask("255.255.255.0").is_ok());
        assert!(parse_netmask("255.255.0.255").is_err());
        assert!(parse_netmask("0.0.0.0").is_ok());
        assert!(parse_netmask("ffff:ffff::").is_ok());
    }

    #[test]
    fn macs_are_normalised() {
        assert_eq!(
            parse_mac("AA-bb-CC-00-11-22"),
            Ok("aa:bb:cc:00:11:22".into())
        );
        assert!(parse_mac("aa:bb:cc:00:11").is_err());
        assert!(parse_mac("aa:bb:cc:00:11:2g").is_err());
    }

    #[test]
    fn suggestions_catch_typos() {
        let known = ["memory", "template", "nameserver"];
        assert_eq!(closest("memroy", &known), Some("memory"));
        assert_eq!(closest("templte", &known), Some("template"));
        assert_eq!(closest("zzz", &known), None);
    }

    #[test]
    fn numbers_and_flags() {
        assert_eq!(parse_u32("42"), Ok(42));
        assert!(parse_u32("4x").is_err());
        assert!(parse_u32("99999999999").is_err());
        assert_eq!(parse_bool("1"), Ok(true));
        assert_eq!(parse_bool("off"), Ok(false));
        assert_eq!(parse_bool(" Yes "), Ok(true));
        assert_eq!(parse_bool("OFF"), Ok(false));
        assert_eq!(
            parse_bool("Maybe"),
            Err("`maybe` is not a flag value (use 1 or 0)".to_string())
        );
        assert!(parse_bool("maybe").is_err());
    }
}
