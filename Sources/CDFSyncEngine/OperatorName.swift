import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Who runs this process, as an activation's confirmation records it: the OS user's name (`$USER` when the password
/// database has no entry for the uid, as in some containers). `cdfsync pipeline activate` records it as is; the
/// console (`cdfsync serve`) records it with ` (console)` appended.
public func operatorName() -> String {
    if let pw = getpwuid(getuid()), let name = pw.pointee.pw_name { return String(cString: name) }
    return ProcessInfo.processInfo.environment["USER"] ?? "uid \(getuid())"
}
