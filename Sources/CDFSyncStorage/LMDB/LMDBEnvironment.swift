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

// MARK: - Environment

/// Directories whose environment is open in this process; LMDB must not open one environment twice per process
/// (closing the second handle would release the first one's locks).
private let openEnvironments = Mutex<Set<String>>([])

private func withOpenEnvironments<R>(_ body: (inout Set<String>) -> R) -> R {
    openEnvironments.withLock { body(&$0) }
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
        try writeSerializer.withLock { _ in
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
    private let writeSerializer = Mutex<Void>(())

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
