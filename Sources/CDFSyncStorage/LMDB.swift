internal import CLMDB
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

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

// MARK: - Environment

/// Directories whose environment is open in this process; LMDB must not open one environment twice per process
/// (closing the second handle would release the first one's locks). Guarded by `openEnvironmentsLock` (an NSLock,
/// i.e. a pthread mutex, which ThreadSanitizer understands; `Synchronization.Mutex` uses raw futexes on Linux
/// and is reported as a race by TSan).
nonisolated(unsafe) private var openEnvironmentSet = Set<String>()
private let openEnvironmentsLock = NSLock()

private func withOpenEnvironments<R>(_ body: (inout Set<String>) -> R) -> R {
    openEnvironmentsLock.lock()
    defer { openEnvironmentsLock.unlock() }
    return body(&openEnvironmentSet)
}

/// One LMDB environment (a directory holding `data.mdb` and `lock.mdb`).
///
/// The environment is `Sendable` because an `MDB_env` is thread-safe: LMDB documents that any thread may begin
/// transactions on it. Transactions are not: each one is begun, used and committed or aborted inside one
/// synchronous call to ``write(_:)`` or ``read(_:)``, so it can never cross threads or suspension points.
///
/// - Important: Open each directory once per process (a second open throws ``StorageError/Code/alreadyOpen``).
///   Write transactions are serialised by LMDB's writer lock; do not call ``write(_:)`` from inside a
///   ``write(_:)`` body (it would wait for itself). ``read(_:)`` inside a write body is allowed (`MDB_NOTLS`)
///   but does not see the uncommitted writes.
public final class LMDBEnvironment: @unchecked Sendable {
    // @unchecked Sendable: MDB_env is documented thread-safe; the only other state is immutable.
    let env: OpaquePointer
    /// The directory holding the environment (as given, for messages).
    public let path: String
    private let registryKey: String
    /// Whether commits are synced to disk (see ``init(directory:mapSize:maxDatabases:durable:)``).
    public let durable: Bool

    /// Opens (creating if needed) the environment in `directory`.
    ///
    /// - Parameters:
    ///   - directory: created (with parents) if missing.
    ///   - mapSize: the largest the data file may grow, in bytes. Address space only; the file grows as needed.
    ///   - maxDatabases: the number of named databases the environment may hold.
    ///   - maxReaders: concurrent read transactions allowed (all processes together); LMDB's default is 126.
    ///   - durable: `true` (default) syncs every commit to disk. `false` opens with `MDB_NOSYNC | MDB_NOMETASYNC`:
    ///     much faster commits, but a system crash (not a process crash) may lose the last transactions or, on
    ///     some file systems, damage the environment. Opt in only for data you can rebuild.
    /// - Throws: ``StorageError`` with `.permissionDenied` (naming the directory), `.corrupted`,
    ///   `.versionMismatch`, `.alreadyOpen` or `.io`.
    public init(
        directory: String, mapSize: Int = 1 << 36, maxDatabases: Int = 16, durable: Bool = true, maxReaders: Int = 126
    ) throws {
        path = directory
        self.durable = durable
        try PrivateFiles.makeDirectory(directory)
        let resolved = URL(fileURLWithPath: directory).resolvingSymlinksInPath().standardizedFileURL.path
        registryKey = resolved
        let inserted = withOpenEnvironments { $0.insert(resolved).inserted }
        guard inserted else {
            throw StorageError(
                code: .alreadyOpen,
                message: "LMDB environment \(directory) is already open in this process; share the open "
                    + "LMDBEnvironment/PanelStore instead of opening it twice")
        }
        var handle: OpaquePointer?
        var rc = mdb_env_create(&handle)
        guard rc == 0, let handle else {
            withOpenEnvironments { _ = $0.remove(resolved) }
            throw StorageError.lmdb(rc, "mdb_env_create", path: directory)
        }
        rc = mdb_env_set_mapsize(handle, mapSize)
        if rc == 0 { rc = mdb_env_set_maxdbs(handle, MDB_dbi(maxDatabases)) }
        if rc == 0 { rc = mdb_env_set_maxreaders(handle, UInt32(maxReaders)) }
        if rc == 0 {
            // MDB_NORDAHEAD: probes of the index and records are random; with the kernel's readahead each page
            // fault maps a large neighbourhood, and a small incremental sync ends up touching the whole file
            // (measured: 10 000 updates on a 970 MB store peaked at 1 GB of resident file pages).
            var flags = UInt32(MDB_NOTLS) | UInt32(MDB_NORDAHEAD)
            if !durable { flags |= UInt32(MDB_NOSYNC) | UInt32(MDB_NOMETASYNC) }
            rc = directory.withCString { mdb_env_open(handle, $0, flags, mode_t(PrivateFiles.fileMode)) }
        }
        guard rc == 0 else {
            mdb_env_close(handle)
            withOpenEnvironments { _ = $0.remove(resolved) }
            throw StorageError.lmdb(rc, "opening the environment", path: directory)
        }
        env = handle
        // Files of an older cdfsync (0644) become private too; a reader that does not own them leaves them be.
        for file in ["data.mdb", "lock.mdb"] { try? PrivateFiles.restrict(directory + "/" + file) }
    }

    deinit {
        mdb_env_close(env)
        withOpenEnvironments { _ = $0.remove(registryKey) }
    }

    /// The largest key LMDB accepts in this environment (511 bytes by default).
    public var maxKeySize: Int { Int(mdb_env_get_maxkeysize(env)) }

    /// The largest key the linked LMDB accepts (a build constant; 511 bytes unless LMDB was built otherwise), known
    /// without opening an environment: a handle is created, asked and closed.
    public static let defaultMaxKeySize: Int = {
        var handle: OpaquePointer?
        guard mdb_env_create(&handle) == 0, let handle else { return 511 }
        defer { mdb_env_close(handle) }
        return Int(mdb_env_get_maxkeysize(handle))
    }()

    /// Drops this process's page-table mappings of the memory map (`madvise(MADV_DONTNEED)`).
    ///
    /// The map is read-only and shared with the file, so nothing is lost: the pages stay in the page cache and
    /// are simply faulted in again when read. Without this, the kernel's fault-around maps up to 16 cached
    /// neighbours on every read fault, and random probes over a freshly written store leave almost the whole
    /// file resident in this process (measured: 800 MB of a 970 MB store after 10 000 updates). Call it between
    /// batches to keep resident memory flat in the store's size.
    public func releaseMappedPages() {
        guard let map = mappedRegion.withLock({ region -> (UInt, Int)? in
            if region == nil { region = Self.findMapping(of: path + "/data.mdb") ?? (0, 0) }
            return region!.1 > 0 ? region : nil
        }) else { return }
        _ = madvise(UnsafeMutableRawPointer(bitPattern: map.0), map.1, MADV_DONTNEED)
    }

    /// Drops the map's pages during a loop of reads (see ``MappedPageBudget``).
    public func mappedPageBudget(every policy: (interval: Int, faults: Int)) -> MappedPageBudget {
        MappedPageBudget(environment: self, interval: policy.interval, faults: policy.faults)
    }

    /// The map's address range, from /proc/self/maps (`mdb_env_info` reports it only for MDB_FIXEDMAP).
    private let mappedRegion = Mutex<(UInt, Int)?>(nil)

    static func findMapping(of file: String) -> (UInt, Int)? {
        let resolved = URL(fileURLWithPath: file).resolvingSymlinksInPath().path
        guard let text = try? String(contentsOfFile: "/proc/self/maps", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasSuffix(" " + resolved) || line.hasSuffix(" " + file) {
            let range = line.split(separator: " ", maxSplits: 1)[0].split(separator: "-")
            guard range.count == 2, let lo = UInt(range[0], radix: 16), let hi = UInt(range[1], radix: 16), hi > lo else { continue }
            return (lo, Int(hi - lo))
        }
        return nil
    }

    /// Bytes in use (last used page + 1, times the page size; last committed state) and the map size.
    func usage() throws -> (used: Int, mapSize: Int) {
        var info = MDB_envinfo()
        try check(mdb_env_info(env, &info), "mdb_env_info", path: path)
        var stat = MDB_stat()
        try check(mdb_env_stat(env, &stat), "mdb_env_stat", path: path)
        return ((info.me_last_pgno + 1) * Int(stat.ms_psize), info.me_mapsize)
    }

    /// Flushes the data file to disk (useful after non-durable writes).
    public func sync() throws {
        try check(mdb_env_sync(env, 1), "mdb_env_sync", path: path)
    }

    /// Runs `body` in a write transaction: commits when it returns, aborts when it throws.
    ///
    /// - Important: `body` is synchronous and must not let the transaction escape. LMDB allows one write
    ///   transaction at a time; concurrent callers wait.
    public func write<R>(_ body: (inout WriteTransaction) throws -> R) throws -> R {
        // Held from begin to after the commit is recorded: LMDB releases its writer mutex inside mdb_txn_commit, so
        // without this another thread's commit could land between this commit and reading its id, and the chain of
        // own commits (``unbrokenOwnCommits``) would look broken by "another process".
        writeSerializer.lock()
        defer { writeSerializer.unlock() }
        var txn: OpaquePointer?
        try check(mdb_txn_begin(env, nil, 0, &txn), "beginning a write transaction", path: path)
        var transaction = WriteTransaction(pointer: txn!, path: path)
        let result: R
        do {
            result = try body(&transaction)
        } catch {
            mdb_txn_abort(txn)
            throw error
        }
        // mdb_txn_commit frees the transaction even when it fails, so never abort after it.
        try check(mdb_txn_commit(txn), "committing a write transaction", path: path)
        let last = lastCommittedTransactionID
        ownCommits.withLock { chain in
            // Still unbroken if nothing was committed (an empty transaction) or exactly this one was.
            if let c = chain { chain = (last == c || last == c + 1) ? last : nil }
        }
        return result
    }

    /// The id of the last committed transaction (from the meta page; no system call).
    public var lastCommittedTransactionID: Int {
        var info = MDB_envinfo()
        guard mdb_env_info(env, &info) == 0 else { return -1 }
        return info.me_last_txnid
    }

    /// Starts following this process's commits from the snapshot `transactionID` (see ``unbrokenOwnCommits``).
    public func trackOwnCommits(from transactionID: Int) {
        ownCommits.withLock { $0 = transactionID }
    }

    /// The last committed transaction id, when every commit since ``trackOwnCommits(from:)`` was made through
    /// this environment's ``write(_:)`` (so in-memory state kept alongside those commits describes the store
    /// exactly); nil when another environment or process committed in between, or when tracking never started.
    public var unbrokenOwnCommits: Int? {
        ownCommits.withLock { chain in
            guard let c = chain, c == lastCommittedTransactionID else { return nil }
            return c
        }
    }

    /// Whether `txn` directly follows the commits tracked since ``trackOwnCommits(from:)`` (no other process
    /// committed in between). Call at the start of a write body.
    public func follows(_ txn: WriteTransaction) -> Bool {
        let id = Int(mdb_txn_id(txn.handle.pointer))
        return ownCommits.withLock { $0.map { id == $0 + 1 } ?? false }
    }

    private let ownCommits = Mutex<Int?>(nil)
    /// Serialises this environment's write transactions in the process (LMDB's own writer lock already does,
    /// except for the moment after a commit; see ``write(_:)``).
    private let writeSerializer = NSLock()

    /// Runs `body` in a read-only transaction that sees one consistent snapshot.
    ///
    /// - Important: keep read transactions short: an open reader stops LMDB from reusing pages, so the file
    ///   grows while it is open.
    public func read<R>(_ body: (ReadTransaction) throws -> R) throws -> R {
        var txn: OpaquePointer?
        try check(mdb_txn_begin(env, nil, UInt32(MDB_RDONLY), &txn), "beginning a read transaction", path: path)
        defer { mdb_txn_abort(txn) }
        return try body(ReadTransaction(pointer: txn!, path: path))
    }

    /// Opens (creating when `create`) the named databases in one write transaction.
    ///
    /// Call once at startup: `mdb_dbi_open` must not run in concurrent transactions.
    public func openDatabases(_ names: [String], create: Bool = true) throws -> [Database] {
        try write { txn in try names.map { try txn.openDatabase($0, create: create) } }
    }
}

// MARK: - Databases and transactions

/// A named database inside an ``LMDBEnvironment``. Valid for the life of the environment.
public struct Database: Sendable, Hashable {
    let dbi: UInt32
    /// The database's name.
    public let name: String
}

/// Flags for ``WriteTransaction/put(_:key:value:flags:)``.
public struct PutFlags: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// Fail with `.keyExists` instead of overwriting (`MDB_NOOVERWRITE`).
    public static let noOverwrite = PutFlags(rawValue: UInt32(MDB_NOOVERWRITE))
    /// The key is greater than every key in the database: append without searching (`MDB_APPEND`).
    /// Fails with `.keyExists` when the key is out of order.
    public static let append = PutFlags(rawValue: UInt32(MDB_APPEND))
}

/// Opaque handle to a live transaction; exists so that ``ReadableTransaction`` can be implemented once.
public struct TransactionHandle {
    let pointer: OpaquePointer
    let path: String
}

@available(*, unavailable)
extension TransactionHandle: Sendable {}

/// Operations shared by read and write transactions.
public protocol ReadableTransaction {
    /// The live transaction.
    var handle: TransactionHandle { get }
}

@inline(__always)
func withVal<R>(_ bytes: UnsafeRawBufferPointer, _ body: (inout MDB_val) throws -> R) rethrows -> R {
    var val = MDB_val(mv_size: bytes.count, mv_data: UnsafeMutableRawPointer(mutating: bytes.baseAddress))
    return try body(&val)
}

extension MDB_val {
    @inline(__always) var buffer: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: mv_data, count: mv_size)
    }
}

extension ReadableTransaction {
    /// Lends the value stored under `key` to `body` without copying (`nil` when absent).
    ///
    /// The buffer points into the memory map and is valid only inside `body`.
    public func withValue<R>(
        _ db: Database, key: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer?) throws -> R
    ) throws -> R {
        var value = MDB_val()
        let rc = withVal(key) { mdb_get(handle.pointer, db.dbi, &$0, &value) }
        if rc == MDB_NOTFOUND { return try body(nil) }
        try check(rc, "get from \(db.name)", path: handle.path)
        return try body(value.buffer)
    }

    /// Lends the value stored under `key` to `body` without copying (`nil` when absent).
    public func withValue<R>(_ db: Database, key: [UInt8], _ body: (UnsafeRawBufferPointer?) throws -> R) throws -> R {
        try key.withUnsafeBytes { k in try withValue(db, key: k, body) }
    }

    /// The value stored under `key`, copied out, or `nil`.
    public func get(_ db: Database, key: [UInt8]) throws -> [UInt8]? {
        try key.withUnsafeBytes { k in try withValue(db, key: k) { $0.map { Array($0) } } }
    }

    /// The value stored under the UTF-8 bytes of `key`, copied out, or `nil`.
    public func get(_ db: Database, key: String) throws -> [UInt8]? {
        try get(db, key: Array(key.utf8))
    }

    /// Calls `body` with each key and value in key order (bytewise), until `body` returns `false`.
    ///
    /// Forward iteration starts at the first key `>= start` (or the first key); with `reverse: true` it runs in
    /// descending order from the last key `<= start` (or the last key). The buffers point into the memory map and
    /// are valid only during the call; copy what you keep.
    public func forEach(
        _ db: Database, from start: [UInt8]? = nil, reverse: Bool = false,
        _ body: (_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws -> Bool
    ) throws {
        var cursor: OpaquePointer?
        try check(mdb_cursor_open(handle.pointer, db.dbi, &cursor), "cursor on \(db.name)", path: handle.path)
        defer { mdb_cursor_close(cursor) }
        var key = MDB_val()
        var value = MDB_val()
        var rc: Int32
        if let start {
            rc = start.withUnsafeBytes { s in
                withVal(s) { k in
                    let r = mdb_cursor_get(cursor, &k, &value, MDB_SET_RANGE)
                    key = k
                    return r
                }
            }
            if reverse {
                if rc == MDB_NOTFOUND {
                    rc = mdb_cursor_get(cursor, &key, &value, MDB_LAST)
                } else if rc == 0, !key.buffer.elementsEqual(start) {
                    rc = mdb_cursor_get(cursor, &key, &value, MDB_PREV)
                }
            }
        } else {
            rc = mdb_cursor_get(cursor, &key, &value, reverse ? MDB_LAST : MDB_FIRST)
        }
        let step = reverse ? MDB_PREV : MDB_NEXT
        while rc == 0 {
            guard try body(key.buffer, value.buffer) else { return }
            rc = mdb_cursor_get(cursor, &key, &value, step)
        }
        if rc != MDB_NOTFOUND { try check(rc, "cursor on \(db.name)", path: handle.path) }
    }

    /// The last (greatest) key and its value, copied out, or `nil` when the database is empty.
    public func last(_ db: Database) throws -> (key: [UInt8], value: [UInt8])? {
        var result: (key: [UInt8], value: [UInt8])?
        try forEach(db, reverse: true) { k, v in
            result = (Array(k), Array(v))
            return false
        }
        return result
    }

    /// The number of entries in `db` (`mdb_stat`, no scan).
    public func count(_ db: Database) throws -> Int {
        var stat = MDB_stat()
        try check(mdb_stat(handle.pointer, db.dbi, &stat), "stat of \(db.name)", path: handle.path)
        return stat.ms_entries
    }
}

/// A read-only transaction, valid only inside ``LMDBEnvironment/read(_:)``.
public struct ReadTransaction: ReadableTransaction {
    public let handle: TransactionHandle
    init(pointer: OpaquePointer, path: String) { handle = TransactionHandle(pointer: pointer, path: path) }

    /// The id of the committed transaction this snapshot shows.
    public var snapshotID: Int { Int(mdb_txn_id(handle.pointer)) }
}

/// A write transaction, valid only inside ``LMDBEnvironment/write(_:)``.
public struct WriteTransaction: ReadableTransaction {
    public let handle: TransactionHandle
    init(pointer: OpaquePointer, path: String) { handle = TransactionHandle(pointer: pointer, path: path) }

    /// Opens (creating when `create`) a named database.
    public func openDatabase(_ name: String, create: Bool = true) throws -> Database {
        var dbi: MDB_dbi = 0
        let flags: UInt32 = create ? UInt32(MDB_CREATE) : 0
        try check(
            name.withCString { mdb_dbi_open(handle.pointer, $0, flags, &dbi) }, "opening database \(name)",
            path: handle.path)
        return Database(dbi: dbi, name: name)
    }

    /// Stores `value` under `key` (both borrowed for the call only).
    public func put(
        _ db: Database, key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer, flags: PutFlags = []
    ) throws {
        let rc = withVal(key) { k in
            withVal(value) { v in mdb_put(handle.pointer, db.dbi, &k, &v, flags.rawValue) }
        }
        try check(rc, "put into \(db.name)", path: handle.path)
    }

    /// Stores `value` under `key`.
    public func put(_ db: Database, key: [UInt8], value: [UInt8], flags: PutFlags = []) throws {
        try key.withUnsafeBytes { k in try value.withUnsafeBytes { v in try put(db, key: k, value: v, flags: flags) } }
    }

    /// Deletes `key`; returns whether it existed.
    @discardableResult
    public func delete(_ db: Database, key: UnsafeRawBufferPointer) throws -> Bool {
        let rc = withVal(key) { mdb_del(handle.pointer, db.dbi, &$0, nil) }
        if rc == MDB_NOTFOUND { return false }
        try check(rc, "delete from \(db.name)", path: handle.path)
        return true
    }

    /// Deletes `key`; returns whether it existed.
    @discardableResult
    public func delete(_ db: Database, key: [UInt8]) throws -> Bool {
        try key.withUnsafeBytes { try delete(db, key: $0) }
    }

    /// Deletes every entry whose key is in `start ..< end` (bytewise), in one cursor pass; returns how many.
    @discardableResult
    public func deleteRange(_ db: Database, from start: [UInt8], upTo end: [UInt8]) throws -> Int {
        var cursor: OpaquePointer?
        try check(mdb_cursor_open(handle.pointer, db.dbi, &cursor), "cursor on \(db.name)", path: handle.path)
        defer { mdb_cursor_close(cursor) }
        var key = MDB_val()
        var value = MDB_val()
        var deleted = 0
        // Re-seek from `start` after each delete: robust against cursor-position quirks after mdb_cursor_del,
        // and each seek lands on the next remaining key.
        while true {
            let rc = start.withUnsafeBytes { s in
                withVal(s) { k in
                    let r = mdb_cursor_get(cursor, &k, &value, MDB_SET_RANGE)
                    key = k
                    return r
                }
            }
            if rc == MDB_NOTFOUND { break }
            try check(rc, "cursor on \(db.name)", path: handle.path)
            let inRange = end.withUnsafeBytes { e in key.buffer.lexicographicallyPrecedes(e) }
            guard inRange else { break }
            try check(mdb_cursor_del(cursor, 0), "delete from \(db.name)", path: handle.path)
            deleted += 1
        }
        return deleted
    }
}

@available(*, unavailable)
extension ReadTransaction: Sendable {}

@available(*, unavailable)
extension WriteTransaction: Sendable {}

/// Keeps the memory map's resident pages bounded during a long loop of reads on one thread.
///
/// Each read fault on the map can bring in many neighbouring cached pages (the kernel's fault-around, and with
/// large page-cache folios up to a whole folio), so a loop of random probes over a large store leaves far more
/// of it resident than over a small one. The budget drops the map's pages
/// (``LMDBEnvironment/releaseMappedPages()``: one `madvise`, then the hot upper levels of each B-tree fault back
/// in) once the calling thread has taken `faults` page faults since the last drop (`getrusage(RUSAGE_THREAD)`,
/// checked every 16 ticks), and in any case every `interval` ticks. A store whose hot pages are already mapped
/// costs almost nothing; a large one is held to about `faults` fault-arounds' worth of mapped pages. Not
/// thread-safe: one per loop.
public struct MappedPageBudget {
    /// Per-row probe loops: drop after 64 faults, or at the latest every 1,024 rows.
    public static let rows = (interval: 1_024, faults: 64)
    /// Loops over large values (outbox frames of one batch each): drop after every one.
    public static let largeValues = (interval: 1, faults: Int.max)
    /// Sequential scans over small keys (the membership filter's rebuild).
    public static let scanKeys = (interval: 4_096, faults: Int.max)

    let environment: LMDBEnvironment
    let interval: Int
    let faults: Int
    private var ticks = 0
    private var faultsAtRelease: Int

    init(environment: LMDBEnvironment, interval: Int, faults: Int) {
        self.environment = environment
        self.interval = max(1, interval)
        self.faults = faults
        faultsAtRelease = faults == .max ? 0 : Self.threadFaults()
    }

    /// Call once per probe, row or value read.
    @inline(__always)
    public mutating func tick() {
        ticks &+= 1
        if ticks >= interval {
            release()
        } else if faults != .max, ticks & 15 == 0, Self.threadFaults() &- faultsAtRelease >= faults {
            release()
        }
    }

    private mutating func release() {
        ticks = 0
        environment.releaseMappedPages()
        if faults != .max { faultsAtRelease = Self.threadFaults() }
    }

    /// Minor and major page faults taken by the calling thread so far.
    static func threadFaults() -> Int {
        var usage = rusage()
        #if canImport(Glibc)
        guard getrusage(__rusage_who_t(1), &usage) == 0 else { return 0 }  // RUSAGE_THREAD (not imported)
        #else
        guard getrusage(RUSAGE_SELF, &usage) == 0 else { return 0 }
        #endif
        return usage.ru_minflt + usage.ru_majflt
    }
}
