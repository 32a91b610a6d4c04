import CDFSyncCore
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The state directory's writer lock: one process at a time may have a store open for writing.
///
/// A writing ``PanelStore`` keeps state in memory that only holds while no other process writes the same store
/// (the membership filter, the record shapes, the delivery cursor's files), and delivery deletes files it does not
/// recognise as its own. The apply transaction already refuses a batch when another process committed in between
/// (``StorageError/Code/concurrentWriter``), but by then a run is half done; this lock refuses the second writer
/// before it starts, and names the one that holds the store.
///
/// `flock(2)` on `writer.lock` in the state directory: the kernel releases it when the holder exits, however it
/// exits (SIGKILL, a crash, power loss), so there is no stale lock to clean up. The file holds the holder's pid,
/// start time and command (its program and subcommand, never its other arguments) for the refusal's message.
public final class WriterLock: @unchecked Sendable {
    /// The lock file's name inside the state directory.
    public static let fileName = "writer.lock"

    /// The lock file.
    public let path: String
    private let fd: Int32

    /// Takes the writer lock of `directory` (created if missing), or throws ``StorageError/Code/inUse`` naming
    /// the process that holds it.
    ///
    /// - Parameters:
    ///   - directory: the state directory.
    ///   - command: what this process is, for another process's refusal message (default: the program name and
    ///     its subcommand).
    public init(directory: String, command: String = WriterLock.processCommand()) throws {
        try PrivateFiles.makeDirectory(directory)
        path = directory + "/" + Self.fileName
        let fd = try PrivateFiles.open(path, flags: O_RDWR)
        // `holder(of:)` probes with a shared lock held for an instant: a few short retries (0.1 s in all) keep a
        // reader that looks at the same moment from refusing a writer.
        var locked = false
        var err: Int32 = 0
        for attempt in 0..<20 {
            if flock(fd, LOCK_EX | LOCK_NB) == 0 {
                locked = true
                break
            }
            err = errno
            guard err == EWOULDBLOCK || err == EINTR else { break }
            if attempt < 19 { usleep(5_000) }
        }
        guard locked else {
            let holder = Self.readHolder(fd: fd)
            close(fd)
            guard err == EWOULDBLOCK else { throw StorageError.system(err, "locking", path: path) }
            throw Self.inUse(directory: directory, holder: holder)
        }
        self.fd = fd
        let text = "pid \(getpid())\nsince \(Self.now())\ncommand \(command)\nprocess \(Self.processToken)\n"
        // The contents only explain a refusal; the lock itself is the flock, so a failed write is not an error.
        if ftruncate(fd, 0) == 0 {
            _ = text.utf8CString.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count - 1, 0) }
        }
    }

    deinit { close(fd) }

    /// What another process is told holds the lock: pid, since, command, and the holder's ``processToken``.
    public struct Holder: Sendable, Equatable {
        public var pid: Int32?
        public var since: String?
        public var command: String?
        public var process: String?

        public init(pid: Int32? = nil, since: String? = nil, command: String? = nil, process: String? = nil) {
            self.pid = pid
            self.since = since
            self.command = command
            self.process = process
        }
    }

    /// A random id of this process, unlike its pid never the same for two processes (in a container every
    /// process may be pid 1): run records carry it to tell whether the process that wrote them still holds the lock.
    public static let processToken = UUID().uuidString.lowercased()

    /// The holder recorded in `directory`'s lock file, if any process holds the lock now; nil when it is free.
    public static func holder(of directory: String) -> Holder? {
        let fd = open(directory + "/" + fileName, O_RDONLY | O_CLOEXEC)
        if fd < 0 { return nil }
        defer { close(fd) }
        // A shared lock that would have to wait means a writer holds it.
        if flock(fd, LOCK_SH | LOCK_NB) == 0 {
            flock(fd, LOCK_UN)
            return nil
        }
        return readHolder(fd: fd)
    }

    /// The program name and the first argument when it is a subcommand (e.g. `cdfsync sync`): what the process
    /// is, without options or paths that might say more than needed.
    public static func processCommand() -> String {
        let args = ProcessInfo.processInfo.arguments
        var words = [args.first.map(FilePaths.lastComponent) ?? "?"]
        if args.count > 1, let first = args[1].first, first.isLetter { words.append(args[1]) }
        return words.joined(separator: " ")
    }

    private static func readHolder(fd: Int32) -> Holder {
        var buffer = [UInt8](repeating: 0, count: 512)
        let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        var holder = Holder()
        guard n > 0 else { return holder }
        for line in String(decoding: buffer[..<n], as: UTF8.self).split(separator: "\n") {
            let parts = line.split(separator: " ", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { continue }
            switch parts[0] {
            case "pid": holder.pid = Int32(parts[1])
            case "since": holder.since = parts[1]
            case "command": holder.command = parts[1]
            case "process": holder.process = parts[1]
            default: break
            }
        }
        return holder
    }

    private static func inUse(directory: String, holder: Holder) -> StorageError {
        var who: [String] = []
        if let pid = holder.pid { who.append("pid \(pid)") }
        if let command = holder.command { who.append("`\(command)`") }
        if let since = holder.since { who.append("since \(since)") }
        let detail = who.isEmpty ? "" : " (" + who.joined(separator: ", ") + ")"
        let sameProcess = holder.pid == getpid()
        let holderText = sameProcess ? "this process" : "another process"
        return StorageError(
            code: .inUse,
            message: "state directory \(directory) is in use by \(holderText)\(detail); one process at a time may "
                + "write it (a second would corrupt its in-memory index and delivery). "
                + (sameProcess
                    ? "Share the open PanelStore instead of opening it twice"
                    : "Wait for that run to finish (or stop it), or give this one another --state-dir"))
    }

    private static func now() -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        return f.string(from: Date())
    }
}
