internal import CLMDB

// MARK: - Result codes

/// An LMDB return code, with the C names, for matching in `catch` and for `StorageError.underlying`.
public struct LMDBResultCode: Error, RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public var rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }

    public static let MDB_KEYEXIST = LMDBResultCode(rawValue: CLMDB.MDB_KEYEXIST)
    public static let MDB_NOTFOUND = LMDBResultCode(rawValue: CLMDB.MDB_NOTFOUND)
    public static let MDB_PAGE_NOTFOUND = LMDBResultCode(rawValue: CLMDB.MDB_PAGE_NOTFOUND)
    public static let MDB_CORRUPTED = LMDBResultCode(rawValue: CLMDB.MDB_CORRUPTED)
    public static let MDB_PANIC = LMDBResultCode(rawValue: CLMDB.MDB_PANIC)
    public static let MDB_VERSION_MISMATCH = LMDBResultCode(rawValue: CLMDB.MDB_VERSION_MISMATCH)
    public static let MDB_INVALID = LMDBResultCode(rawValue: CLMDB.MDB_INVALID)
    public static let MDB_MAP_FULL = LMDBResultCode(rawValue: CLMDB.MDB_MAP_FULL)
    public static let MDB_DBS_FULL = LMDBResultCode(rawValue: CLMDB.MDB_DBS_FULL)
    public static let MDB_READERS_FULL = LMDBResultCode(rawValue: CLMDB.MDB_READERS_FULL)
    public static let MDB_TXN_FULL = LMDBResultCode(rawValue: CLMDB.MDB_TXN_FULL)
    public static let MDB_MAP_RESIZED = LMDBResultCode(rawValue: CLMDB.MDB_MAP_RESIZED)
    public static let MDB_BAD_VALSIZE = LMDBResultCode(rawValue: CLMDB.MDB_BAD_VALSIZE)

    public var description: String { String(cString: mdb_strerror(rawValue)) + " (\(rawValue))" }

    /// Lets `catch LMDBResultCode.MDB_MAP_FULL` match a ``StorageError`` whose underlying cause is that code.
    public static func ~= (pattern: LMDBResultCode, error: any Error) -> Bool {
        if let code = error as? LMDBResultCode { return code == pattern }
        if let storage = error as? StorageError, let code = storage.underlying as? LMDBResultCode {
            return code == pattern
        }
        return false
    }
}

extension StorageError {
    /// Maps an LMDB return code to a `StorageError` whose message names `path` and says what to do.
    static func lmdb(_ rc: Int32, _ operation: String, path: String) -> StorageError {
        if rc > 0 { return .system(rc, "LMDB \(operation) in", path: path) }
        let cause = LMDBResultCode(rawValue: rc)
        switch rc {
        case CLMDB.MDB_MAP_FULL:
            return StorageError(
                code: .mapFull,
                message: "LMDB map of \(path) is full during \(operation); the transaction was aborted and nothing "
                    + "was written. Reopen the store with a larger map size (mapSize) and rerun.",
                underlying: cause)
        case CLMDB.MDB_READERS_FULL:
            return StorageError(
                code: .readersFull,
                message: "LMDB environment \(path) has no free reader slot (\(operation)); too many concurrent "
                    + "read transactions or processes. Close idle readers or stale processes and retry.",
                underlying: cause)
        case CLMDB.MDB_KEYEXIST:
            return StorageError(
                code: .keyExists, message: "LMDB \(operation) in \(path): key already exists or is out of order",
                underlying: cause)
        case CLMDB.MDB_CORRUPTED, CLMDB.MDB_PAGE_NOTFOUND, CLMDB.MDB_PANIC, CLMDB.MDB_INVALID:
            return StorageError(
                code: .corrupted,
                message: "LMDB environment \(path) is corrupted or not an LMDB file (\(operation): \(cause)). "
                    + "Restore it from a backup or delete the directory and resync from the source.",
                underlying: cause)
        case CLMDB.MDB_VERSION_MISMATCH:
            return StorageError(
                code: .versionMismatch,
                message: "LMDB environment \(path) was written by an incompatible LMDB version (\(operation))",
                underlying: cause)
        case CLMDB.MDB_TXN_FULL:
            return StorageError(
                code: .transactionFull,
                message: "LMDB transaction in \(path) has too many dirty pages (\(operation)); apply smaller batches",
                underlying: cause)
        case CLMDB.MDB_DBS_FULL:
            return StorageError(
                code: .databasesFull,
                message: "LMDB environment \(path) has no room for another named database (\(operation)); "
                    + "raise maxDatabases",
                underlying: cause)
        case CLMDB.MDB_MAP_RESIZED:
            return StorageError(
                code: .mapResized,
                message: "LMDB map of \(path) was grown by another process (\(operation)); reopen the store",
                underlying: cause)
        case CLMDB.MDB_BAD_VALSIZE:
            return StorageError(
                code: .invalidArgument,
                message: "LMDB \(operation) in \(path): key is empty or longer than the maximum key size",
                underlying: cause)
        default:
            return StorageError(code: .lmdb, message: "LMDB \(operation) in \(path): \(cause)", underlying: cause)
        }
    }
}

@inline(__always)
func check(_ rc: Int32, _ operation: @autoclosure () -> String, path: String) throws(StorageError) {
    if rc != 0 { throw StorageError.lmdb(rc, operation(), path: path) }
}
