//! How much memory a process holds: what loading a model costs, and what a session leaves
//! behind (Linux `/proc`; `None` elsewhere).

/// The resident set size of this process, in bytes.
pub fn resident_bytes() -> Option<u64> {
    resident_bytes_in("/proc/self/status")
}

/// The resident set size of process `pid`, in bytes.
pub fn resident_bytes_of(pid: u32) -> Option<u64> {
    resident_bytes_in(&format!("/proc/{pid}/status"))
}

fn resident_bytes_in(status_path: &str) -> Option<u64> {
    let status = std::fs::read_to_string(status_path).ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_process_holds_memory_and_a_missing_one_none() {
        let ours = super::resident_bytes().expect("Linux /proc");
        assert!(ours > 1 << 20, "{ours}");
        assert!(super::resident_bytes_of(std::process::id()).is_some());
        assert_eq!(super::resident_bytes_of(u32::MAX), None);
    }
}
