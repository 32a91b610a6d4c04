import Foundation

/// The kernel's view of this process's memory, for run records and the bounded-memory test (design §2.4).
public enum ProcessMemory {
    /// Peak resident set size so far (`VmHWM` in /proc/self/status), in bytes; 0 where /proc is unavailable.
    public static func peakResidentBytes() -> Int { statusField("VmHWM") }

    /// A `kB` field of /proc/self/status, in bytes.
    static func statusField(_ name: String) -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix(name + ":") {
            let digits = line.dropFirst(name.count + 1).filter(\.isNumber)
            return (Int(digits) ?? 0) * 1024
        }
        return 0
    }
}
