internal import CLMDB

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

    /// Stores a value of `count` bytes under `key`, written by `fill` straight into the space LMDB reserves for it
    /// (`MDB_RESERVE`: no intermediate copy); `fill` must write all `count` bytes.
    @inline(__always)
    func reserve(
        _ db: Database, key: UnsafeRawBufferPointer, count: Int, flags: PutFlags = [],
        _ fill: (UnsafeMutableRawPointer) -> Void
    ) throws {
        var v = MDB_val(mv_size: count, mv_data: nil)
        let rc = withVal(key) { k in mdb_put(handle.pointer, db.dbi, &k, &v, flags.rawValue | UInt32(MDB_RESERVE)) }
        try check(rc, "put into \(db.name)", path: handle.path)
        fill(v.mv_data)
    }

    /// A cursor on `db` for the rest of this transaction (``LMDBCursor``; LMDB frees it with the transaction).
    func cursor(_ db: Database) throws -> LMDBCursor { try LMDBCursor(handle, db) }

    /// The id LMDB gave this transaction.
    var id: Int { Int(mdb_txn_id(handle.pointer)) }

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
