internal import CLMDB

/// A cursor on one database: the apply loop's fast paths, and walks beside another cursor. A lookup leaves the cursor on the
/// key; an append through it stays on the last leaf, so the next `MDB_APPEND` needs no descent from the root
/// (`mdb_put` starts a fresh cursor and descends every time); values can be written straight into the space LMDB
/// reserves for them.
///
/// Valid only inside the transaction body that made it: a write transaction's cursors are freed with the transaction
/// (``WriteTransaction/cursor(_:)``), a read transaction's by ``ReadableTransaction/withCursor(_:_:)``, which lends
/// one. Not thread-safe (a transaction belongs to one thread).
struct LMDBCursor {
    private let pointer: OpaquePointer
    private let path: String
    /// The database's name, for messages.
    let name: String

    init(_ txn: TransactionHandle, _ db: Database) throws {
        var c: OpaquePointer?
        try check(mdb_cursor_open(txn.pointer, db.dbi, &c), "cursor on \(db.name)", path: txn.path)
        pointer = c!
        path = txn.path
        name = db.name
    }

    /// Frees a read transaction's cursor (a write transaction's are freed with it).
    func close() { mdb_cursor_close(pointer) }

    /// Moves to the first key and lends it and its value; nil when the database is empty.
    func first() throws -> (key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer)? { try move(MDB_FIRST) }

    /// Moves to the next key and lends it and its value; nil after the last.
    func next() throws -> (key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer)? { try move(MDB_NEXT) }

    private func move(_ op: MDB_cursor_op) throws -> (key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer)? {
        var k = MDB_val()
        var v = MDB_val()
        let rc = mdb_cursor_get(pointer, &k, &v, op)
        if rc == MDB_NOTFOUND { return nil }
        try check(rc, "cursor on \(name)", path: path)
        return (k.buffer, v.buffer)
    }

    /// Moves to `key` and lends its value (valid until the next write in the transaction); nil when absent.
    @inline(__always)
    func find(_ key: UnsafeRawBufferPointer) throws -> UnsafeRawBufferPointer? {
        var k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        var v = MDB_val()
        let rc = mdb_cursor_get(pointer, &k, &v, MDB_SET_KEY)
        if rc == MDB_NOTFOUND { return nil }
        try check(rc, "get from \(name)", path: path)
        return v.buffer
    }

    /// Moves to the last (greatest) key and lends it and its value; nil when the database is empty.
    @inline(__always)
    func last() throws -> (key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer)? {
        var k = MDB_val()
        var v = MDB_val()
        let rc = mdb_cursor_get(pointer, &k, &v, MDB_LAST)
        if rc == MDB_NOTFOUND { return nil }
        try check(rc, "reading the last key of \(name)", path: path)
        return (k.buffer, v.buffer)
    }

    /// Stores `value` under `key` through the cursor (which is left on the entry).
    @inline(__always)
    func put(_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer, flags: PutFlags = []) throws {
        var k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        var v = MDB_val(mv_size: value.count, mv_data: UnsafeMutableRawPointer(mutating: value.baseAddress))
        try check(mdb_cursor_put(pointer, &k, &v, flags.rawValue), "put into \(name)", path: path)
    }

    /// Stores a value of `count` bytes under `key`, written by `fill` straight into the space LMDB reserves for it
    /// (`MDB_RESERVE`); `fill` must write all `count` bytes.
    @inline(__always)
    func reserve(
        _ key: UnsafeRawBufferPointer, count: Int, flags: PutFlags = [], _ fill: (UnsafeMutableRawPointer) -> Void
    ) throws {
        var k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        var v = MDB_val(mv_size: count, mv_data: nil)
        try check(mdb_cursor_put(pointer, &k, &v, flags.rawValue | UInt32(MDB_RESERVE)), "put into \(name)", path: path)
        fill(v.mv_data)
    }
}

@available(*, unavailable)
extension LMDBCursor: Sendable {}

extension ReadableTransaction {
    /// Lends a cursor on `db` to `body` and frees it afterwards.
    func withCursor<R>(_ db: Database, _ body: (LMDBCursor) throws -> R) throws -> R {
        let cursor = try LMDBCursor(handle, db)
        defer { cursor.close() }
        return try body(cursor)
    }
}
