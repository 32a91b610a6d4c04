/// Path text, taken apart and put together byte by byte at `/`.
///
/// Paths come from the user (`--state-dir s`, `state_dir: d`, a pipeline's name in its default output directory), so
/// nothing here computes an index into one: Foundation's `NSString.deletingLastPathComponent` trapped on a path
/// without a `/` (`s`, `.`, `é`), and Character-level splitting would not split `/` followed by a combining mark,
/// which the kernel still sees as a separator. Every function works on the UTF-8 bytes, split at `/` (0x2F, which
/// never occurs inside a multi-byte UTF-8 sequence).
public enum FilePaths {
    /// The longest path the kernel takes (Linux `PATH_MAX`, with its terminating NUL).
    public static let maxLength = 4096

    /// The non-empty components of `path`, in order (`a//b/` → `a`, `b`; `/` → none).
    public static func components(_ path: String) -> [String] {
        path.utf8.split(separator: UInt8(ascii: "/")).map { String(decoding: $0, as: UTF8.self) }
    }

    /// Whether `path` starts at the root.
    public static func isAbsolute(_ path: String) -> Bool { path.utf8.first == UInt8(ascii: "/") }

    /// The directory that holds `path`, or nil when `path` names no parent of its own (`s`, `s/`, `.`, `/`, ``).
    public static func parent(_ path: String) -> String? {
        var parts = components(path)
        guard parts.popLast() != nil else { return nil }
        if parts.isEmpty { return isAbsolute(path) ? "/" : nil }
        return (isAbsolute(path) ? "/" : "") + parts.joined(separator: "/")
    }

    /// The last component of `path` (`/usr/bin/cdfsync` → `cdfsync`; `/` → `/`; `` → ``).
    public static func lastComponent(_ path: String) -> String {
        components(path).last ?? (isAbsolute(path) ? "/" : "")
    }

    /// `path` and each directory above it that the path names, outermost first: `a/b/c` → `a`, `a/b`, `a/b/c`;
    /// `/x/y` → `/x`, `/x/y`. (`..` and `.` components stay as they are: the kernel resolves them.)
    public static func prefixes(_ path: String) -> [String] {
        var out: [String] = []
        var current = isAbsolute(path) ? "/" : ""
        for part in components(path) {
            current += (current.isEmpty || current == "/" ? "" : "/") + part
            out.append(current)
        }
        return out
    }

    /// Why `name` cannot be one component of a path inside a directory, or nil when it can: it must be non-empty,
    /// not `.` or `..`, and hold no `/` or NUL — so `base + "/" + name` names a file directly inside `base`.
    public static func componentProblem(_ name: String) -> String? {
        if name.isEmpty { return "is empty" }
        if name == "." || name == ".." { return "'\(name)' is not a file name" }
        if name.utf8.contains(UInt8(ascii: "/")) { return "contains '/'" }
        if name.utf8.contains(0) { return "contains a NUL byte" }
        return nil
    }

    /// `base/name` when `name` is a single component (``componentProblem(_:)``), so the result stays inside
    /// `base`; nil otherwise.
    public static func child(_ base: String, _ name: String) -> String? {
        guard componentProblem(name) == nil else { return nil }
        if base.isEmpty { return name }
        return base.utf8.last == UInt8(ascii: "/") ? base + name : base + "/" + name
    }

    /// `path` as an error message shows it: on one line (control characters escaped as `\u{…}`), and a path longer
    /// than 160 bytes shortened in the middle with its length, so a hostile or mistaken path cannot flood or
    /// split the message.
    public static func shown(_ path: String) -> String {
        var escaped = ""
        for scalar in path.unicodeScalars {
            if scalar.value < 0x20 || scalar.value == 0x7F {
                escaped += "\\u{\(String(scalar.value, radix: 16))}"
            } else {
                escaped.unicodeScalars.append(scalar)
            }
        }
        guard escaped.utf8.count > 160 else { return escaped }
        let scalars = Array(escaped.unicodeScalars)
        var head = String.UnicodeScalarView()
        head.append(contentsOf: scalars.prefix(60))
        var tail = String.UnicodeScalarView()
        tail.append(contentsOf: scalars.suffix(60))
        return String(head) + "…(\(path.utf8.count) bytes)…" + String(tail)
    }
}
