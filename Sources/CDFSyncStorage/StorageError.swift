import CDFSyncCore

/// The one error type of the storage module.
///
/// `code` says what kind of failure it was (an open enum: new codes can be added without breaking callers),
/// `message` says which file or database was involved and what to do about it, and `underlying` keeps the raw
/// cause (an ``LMDBResultCode``, a ``SystemErrno`` or a zstd error name) for logs.
///
/// `description` is short and safe to log: it never contains record bytes.
public struct StorageError: Error, Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    /// What kind of storage failure happened.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        enum Base: String, Hashable, Sendable {
            case mapFull, readersFull, keyExists, corrupted, permissionDenied, notFound, alreadyOpen
            case transactionFull, databasesFull, mapResized, versionMismatch, invalidArgument
            case io, compression, lmdb, concurrentWriter, inUse, directoryTaken
        }
        let base: Base

        /// The LMDB map (`mapSize`) is full (`MDB_MAP_FULL`): reopen with a larger map size.
        public static let mapFull = Code(base: .mapFull)
        /// All reader slots are in use (`MDB_READERS_FULL`): too many concurrent read transactions or processes.
        public static let readersFull = Code(base: .readersFull)
        /// A put with no-overwrite or append found the key already present or out of order (`MDB_KEYEXIST`).
        public static let keyExists = Code(base: .keyExists)
        /// The environment or a compressed value is damaged (`MDB_CORRUPTED`, `MDB_PAGE_NOTFOUND`,
        /// `MDB_INVALID`, `MDB_PANIC`) or stored bytes do not decode.
        public static let corrupted = Code(base: .corrupted)
        /// The process may not read or write a file or directory (`EACCES`, `EPERM`, `EROFS`).
        public static let permissionDenied = Code(base: .permissionDenied)
        /// Something that must exist does not (a run id, a directory).
        public static let notFound = Code(base: .notFound)
        /// The LMDB environment in this directory is already open in this process.
        public static let alreadyOpen = Code(base: .alreadyOpen)
        /// Another process committed to the store while this one was applying: this run stops without writing
        /// (its in-memory identity filter no longer describes the store); run it again, one writer at a time.
        public static let concurrentWriter = Code(base: .concurrentWriter)
        /// Another process holds the state directory's writer lock (``WriterLock``): nothing was opened or written.
        public static let inUse = Code(base: .inUse)
        /// A delivery directory holds the segments of another store (or of an earlier store of this state
        /// directory): delivering into it would overwrite or delete them.
        public static let directoryTaken = Code(base: .directoryTaken)
        /// One write transaction touched too many pages (`MDB_TXN_FULL`): apply smaller batches.
        public static let transactionFull = Code(base: .transactionFull)
        /// More named databases than `maxDatabases` (`MDB_DBS_FULL`).
        public static let databasesFull = Code(base: .databasesFull)
        /// Another process grew the map beyond this process's map size (`MDB_MAP_RESIZED`).
        public static let mapResized = Code(base: .mapResized)
        /// The environment was written by an incompatible LMDB version (`MDB_VERSION_MISMATCH`).
        public static let versionMismatch = Code(base: .versionMismatch)
        /// A caller passed a value the store cannot accept (a key too long, a scope containing NUL).
        public static let invalidArgument = Code(base: .invalidArgument)
        /// A file system call failed.
        public static let io = Code(base: .io)
        /// zstd failed: a corrupt or truncated frame, or a compression error.
        public static let compression = Code(base: .compression)
        /// Any other LMDB return code.
        public static let lmdb = Code(base: .lmdb)

        public var description: String { base.rawValue }
    }

    /// What kind of failure this is.
    public var code: Code
    /// What happened, to which file or database, and what to do about it. Never contains record bytes.
    public var message: String
    /// The raw cause: an ``LMDBResultCode``, a ``SystemErrno``, a ``ZstdErrorName`` or another error.
    public var underlying: (any Error)?

    public init(code: Code, message: String, underlying: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.underlying = underlying
    }

    public var description: String { "StorageError(\(code)): \(message)" }

    public var debugDescription: String {
        if let underlying { return "\(description) [underlying: \(underlying)]" }
        return description
    }
}

/// An `errno` value captured right after the failing system call.
public struct SystemErrno: Error, Sendable, Hashable, CustomStringConvertible {
    public var code: Int32
    public init(_ code: Int32) { self.code = code }
    public var description: String { "errno \(code) (\(String(cString: strerror(code))))" }
}

/// The name zstd gives an error code (`ZSTD_getErrorName`).
public struct ZstdErrorName: Error, Sendable, Hashable, CustomStringConvertible {
    public var name: String
    public var description: String { "zstd: \(name)" }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

extension StorageError {
    /// Builds an error from an `errno` value, naming `path` and the `operation` that failed.
    static func system(_ err: Int32, _ operation: String, path full: String) -> StorageError {
        let cause = SystemErrno(err)
        let path = FilePaths.shown(full)
        switch err {
        case EACCES, EPERM:
            return StorageError(
                code: .permissionDenied,
                message: "\(operation) \(path): permission denied; check that this user owns the directory and may read and write it",
                underlying: cause)
        case EROFS:
            return StorageError(
                code: .permissionDenied,
                message: "\(operation) \(path): the file system is read-only; choose a writable directory",
                underlying: cause)
        case ENOENT:
            return StorageError(
                code: .notFound, message: "\(operation) \(path): no such file or directory", underlying: cause)
        case ENOTDIR, EEXIST:
            return StorageError(
                code: .io,
                message: "\(operation) \(path): a path component is a file, not a directory; choose another directory",
                underlying: cause)
        case ENAMETOOLONG:
            return StorageError(
                code: .invalidArgument,
                message: "\(operation) \(path): the path is too long (at most \(FilePaths.maxLength - 1) bytes, "
                    + "255 per name); choose a shorter one",
                underlying: cause)
        case ENOMEM:
            return StorageError(
                code: .io,
                message: "\(operation) \(path): out of memory or address space (the LMDB map is reserved as address "
                    + "space); lower mapSize or raise the process's address-space limit (ulimit -v)",
                underlying: cause)
        case ENOSPC:
            return StorageError(
                code: .io, message: "\(operation) \(path): no space left on device; free space and rerun",
                underlying: cause)
        case EIO where availableBytes(near: path).map({ $0 < nearlyFull }) == true:
            // LMDB turns a short write into EIO ("filesystem full?" in its source), and a flush of delayed writes
            // can fail the same way: with (almost) nothing left on the file system, that is what happened.
            let free = availableBytes(near: path) ?? 0
            return StorageError(
                code: .io,
                message: "\(operation) \(path): no space left on device (the write failed with an I/O error and the "
                    + "file system has \(free) bytes free); free space and rerun",
                underlying: cause)
        case EIO where fileSizeLimit() != nil:
            // A write cut short at RLIMIT_FSIZE is also an EIO to LMDB.
            return StorageError(
                code: .io,
                message: "\(operation) \(path): a write failed with an I/O error, probably at this process's file size "
                    + "limit (ulimit -f: \(fileSizeLimit() ?? 0) bytes); raise the limit and rerun (if the files are "
                    + "smaller than that, check the disk)",
                underlying: cause)
        case EDQUOT:
            return StorageError(
                code: .io,
                message: "\(operation) \(path): disk quota exceeded; free space or raise the quota and rerun",
                underlying: cause)
        case EFBIG:
            return StorageError(
                code: .io,
                message: "\(operation) \(path): file too large for "
                    + (fileSizeLimit().map { "this process's file size limit (ulimit -f: \($0) bytes)" }
                        ?? "the file system")
                    + "; raise the limit and rerun",
                underlying: cause)
        default:
            return StorageError(code: .io, message: "\(operation) \(path): \(cause)", underlying: cause)
        }
    }

    /// The largest file this process may write (RLIMIT_FSIZE), when it is limited.
    static func fileSizeLimit() -> UInt64? {
        var limit = rlimit()
        // RLIM_INFINITY is all ones (the C macro does not import).
        guard getrlimit(__rlimit_resource_t(RLIMIT_FSIZE.rawValue), &limit) == 0, limit.rlim_cur != rlim_t.max else {
            return nil
        }
        return UInt64(limit.rlim_cur)
    }

    /// Below this many free bytes, a file system counts as full (an EIO on it is taken for ENOSPC).
    static let nearlyFull: UInt64 = 16 << 20

    /// Bytes this process may still write on the file system holding `path` (or its nearest existing parent): the
    /// blocks available to unprivileged users, or all free blocks for root (which may use the reserve).
    static func availableBytes(near path: String) -> UInt64? {
        var candidate = path
        for _ in 0..<64 {
            var info = statvfs()
            if statvfs(candidate, &info) == 0 {
                let blocks = geteuid() == 0 ? UInt64(info.f_bfree) : UInt64(info.f_bavail)
                let (bytes, overflow) = blocks.multipliedReportingOverflow(by: UInt64(info.f_frsize))
                return overflow ? .max : bytes
            }
            guard let slash = candidate.lastIndex(of: "/") else { return nil }
            let parent = slash == candidate.startIndex ? "/" : String(candidate[..<slash])
            if parent == candidate { return nil }
            candidate = parent
        }
        return nil
    }
}
