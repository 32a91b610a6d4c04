import CDFSyncCore
import Foundation

/// What apply does with one row, decided from its key's identity in the transaction and the email/phone indexes
/// (design §3): external id first, then email, then phone.
enum RowDecision {
    /// A known key whose stored version is newer: nothing is written.
    case skipOlder
    /// A known key whose content is unchanged: no record, no outbox line; the stored version (and contact hash)
    /// move to `next` when `write` says so.
    case unchanged(next: IdentValue, write: Bool)
    /// A known key whose content changed: its participant's record is rewritten.
    case update(pid: UInt64, linked: Bool)
    /// A new key whose email (or else phone) belongs to participant `owner`: linked to it.
    case link(owner: UInt64)
    /// A new key that resolves to no participant: a new one.
    case insert
    /// A new key that resolves to no participant, in a row that is not opted in: not imported.
    case consentBlocked
}

/// Identity inside one write transaction of apply: the source-key index (`ident`), the email and phone indexes,
/// the participants' contact values, links and conflicts.
///
/// The membership filter lets lookups of keys and values never stored skip LMDB. Keys are read through one cursor,
/// which appends new keys that sort after every stored one (a first load in key order never descends the tree).
/// Not thread-safe; one per write transaction, on its thread.
struct IdentityResolver {
    private let txn: WriteTransaction
    private let store: PanelStore
    let filter: MembershipFilter
    private let identCursor: LMDBCursor
    private let path: String
    private var conflictSeq: UInt64?
    /// When this transaction's conflicts were seen (UTC, set at the first).
    private var seenAt: String?

    init(store: PanelStore, txn: WriteTransaction) throws {
        self.txn = txn
        self.store = store
        filter = store.filter
        path = store.directory
        identCursor = try txn.cursor(store.ident)
    }

    // MARK: Deciding

    /// The decision for a row of `version`, content `hash` and `contact`, whose key's identity so far is `stored`
    /// (nil: not in the panel), under `admission`.
    @inline(__always)
    func decide(
        stored: IdentValue?, version: Int64, hash: UInt64, contact: ContactValues, optedIn: Bool,
        admission: AdmissionPolicy
    ) throws -> RowDecision {
        if let stored {
            // A participant the panel holds gets the row whether or not it is opted in (admission decides only for
            // new keys): a withdrawal is applied, never lost.
            if version < stored.version { return .skipOlder }
            if stored.hash == hash {
                let next = IdentValue(
                    pid: stored.pid, version: max(version, stored.version), hash: hash, contactHash: contact.hash,
                    linked: stored.linked)
                return .unchanged(next: next, write: version > stored.version || stored.contactHash != contact.hash)
            }
            return .update(pid: stored.pid, linked: stored.linked)
        }
        var owner: UInt64?
        if let e = contact.email { owner = try indexOwner(.email, e) }
        if owner == nil, let p = contact.phone { owner = try indexOwner(.phone, p) }
        switch admission.admit(resolvedTo: owner, optedIn: optedIn) {
        case .participant(let pid): return .link(owner: pid)
        case .newParticipant: return .insert
        case .notImported: return .consentBlocked
        }
    }

    // MARK: The source-key index

    /// The `ident` entry of `key`, or nil.
    @inline(__always)
    func readIdent(_ key: UnsafeRawBufferPointer) throws -> IdentValue? {
        guard let v = try identCursor.find(key) else { return nil }
        guard let value = IdentValue(v) else {
            throw StorageError(
                code: .corrupted, message: "ident entry in \(path) is \(v.count) bytes, not \(IdentValue.size)")
        }
        return value
    }

    /// Replaces the `ident` entry of a key the store holds.
    @inline(__always)
    func replaceIdent(_ key: UnsafeRawBufferPointer, _ v: IdentValue) throws {
        // Locals, not `self`, in the closure: capturing the resolver copied it (and retained each of its references)
        // per row.
        let (txn, ident) = (txn, store.ident)
        try v.withBytes { try txn.put(ident, key: key, value: $0) }
    }

    /// Stores a new identity key. `insertInFilter` is the key's probe when the filter still has to count it (the
    /// batch's pass, ``MembershipFilter/lookUpAndInsert(_:)``, inserted the keys it found absent); `append` says
    /// `key` sorts after every key in `ident` (``firstKeyAfterIdent(count:_:)``).
    @inline(__always)
    func putIdent(_ key: UnsafeRawBufferPointer, _ v: IdentValue, insertInFilter: MembershipFilter.Probe?, append: Bool)
        throws
    {
        // An append goes through the ident cursor, which then stays on the last leaf for the next. Locals, not
        // `self`, in the closure (see replaceIdent).
        let (txn, ident, cursor) = (txn, store.ident, identCursor)
        try v.withBytes {
            if append {
                try cursor.put(key, $0, flags: .append)
            } else {
                try txn.put(ident, key: key, value: $0)
            }
        }
        if let insertInFilter { filter.insert(insertInFilter) }
    }

    /// The first of `count` sorted identity keys (position → scope, external id; the key is scope, NUL, id) that
    /// sorts after every key in `ident` as this transaction began — `count` when there is none, 0 when `ident`
    /// is empty.
    func firstKeyAfterIdent(
        count: Int, _ keyAt: (Int) -> (scope: [UInt8], id: UnsafeRawBufferPointer)
    ) throws -> Int {
        guard count > 0 else { return 0 }
        guard let last = try identCursor.last()?.key else { return 0 }
        // > 0 when the key at `position` sorts after `last` (memcmp order, shorter first on a common prefix).
        func after(_ position: Int) -> Bool {
            let (scope, id) = keyAt(position)
            let c = scope.withUnsafeBytes { s -> Int in
                let n = min(s.count, last.count)
                if n > 0 {
                    let c = compareBytes(UnsafeRawBufferPointer(rebasing: s[0..<n]), UnsafeRawBufferPointer(rebasing: last[0..<n]))
                    if c != 0 { return c }
                }
                if last.count <= s.count { return 1 }  // `last` is a prefix of the scope: the key is longer
                if last[s.count] != 0 { return -1 }  // the key's NUL sorts before any other byte
                return compareBytes(id, UnsafeRawBufferPointer(rebasing: last[(s.count + 1)...]))
            }
            return c > 0
        }
        // The keys are sorted, so "after the last key" holds from some position on.
        var lo = 0
        var hi = count
        while lo < hi {
            let mid = (lo + hi) / 2
            if after(mid) { hi = mid } else { lo = mid + 1 }
        }
        return lo
    }

    /// Records that source key `key` belongs to participant `pid` (`links`).
    func putLink(_ pid: UInt64, _ key: UnsafeRawBufferPointer) throws {
        var k = bytesBE(pid)
        k.append(contentsOf: key)
        try k.withUnsafeBytes { try txn.put(store.links, key: $0, value: UnsafeRawBufferPointer(start: nil, count: 0)) }
    }

    // MARK: Email and phone

    /// The participant the email/phone index maps `value` to (the filter skips the probe for unseen values).
    func indexOwner(_ kind: MembershipFilter.Kind, _ value: [UInt8], probe: MembershipFilter.Probe? = nil) throws
        -> UInt64?
    {
        guard filter.mayContain(probe ?? value.withUnsafeBytes { filter.probe(kind, $0) }) else { return nil }
        return try value.withUnsafeBytes { k in
            try txn.withValue(kind == .email ? store.emailIndex : store.phoneIndex, key: k) { v -> UInt64? in
                guard let v else { return nil }
                guard v.count == 8 else {
                    throw StorageError(code: .corrupted, message: "an email/phone index entry in \(path) is not 8 bytes")
                }
                return loadBE(v)
            }
        }
    }

    /// Points the email/phone index at participant `pid` for each value the change provides, when that value is
    /// free, and removes the participant's previous value from the index (if it still points at `pid`). A value
    /// owned by another participant is recorded as a conflict and left with its owner. Returns the number of
    /// conflicts recorded.
    mutating func maintainContact(
        pid: UInt64, _ contact: ContactValues, isNew: Bool, identKey: UnsafeRawBufferPointer, version: Int64
    ) throws -> Int {
        var current: (email: [UInt8], phone: [UInt8]) = ([], [])
        if !isNew {
            try withBE(pid) { k in
                try txn.withValue(store.contacts, key: k) { v in
                    guard let v else { return }
                    guard v.count >= 2, 2 + (Int(v[0]) << 8 | Int(v[1])) <= v.count else {
                        throw StorageError(code: .corrupted, message: "contact entry of participant \(pid) in \(path) is truncated")
                    }
                    let n = Int(v[0]) << 8 | Int(v[1])
                    current = (Array(v[2..<(2 + n)]), Array(v[(2 + n)...]))
                }
            }
        }
        var next = current
        var conflicts = 0
        for kind in [MembershipFilter.Kind.email, .phone] {
            guard let wanted = kind == .email ? contact.email : contact.phone else { continue }
            let had = kind == .email ? current.email : current.phone
            if wanted == had { continue }
            let db = kind == .email ? store.emailIndex : store.phoneIndex
            let probe = wanted.withUnsafeBytes { filter.probe(kind, $0) }
            if let owner = try indexOwner(kind, wanted, probe: probe) {
                if owner != pid {
                    try recordConflict(
                        identKey: identKey, version: version, kind: kind, value: wanted, previous: had, pid: pid,
                        other: owner)
                    conflicts += 1
                    continue
                }
            } else {
                // Free. (Deferring these puts to the end of the transaction and writing them sorted was measured
                // slower: the map that lets the batch see its own entries costs more than the random puts save.)
                try wanted.withUnsafeBytes { k in try withBE(pid) { try txn.put(db, key: k, value: $0) } }
                filter.insert(probe)
            }
            if !had.isEmpty, try indexOwner(kind, had) == pid {
                try had.withUnsafeBytes { _ = try txn.delete(db, key: $0) }
            }
            if kind == .email { next.email = wanted } else { next.phone = wanted }
        }
        if next.email != current.email || next.phone != current.phone {
            var v = [UInt8(truncatingIfNeeded: next.email.count >> 8), UInt8(truncatingIfNeeded: next.email.count)]
            v += next.email
            v += next.phone
            // A new participant's id is greater than every stored one, so its contact entry appends.
            try v.withUnsafeBytes { vb in
                try withBE(pid) { try txn.put(store.contacts, key: $0, value: vb, flags: isNew ? .append : []) }
            }
        }
        return conflicts
    }

    /// Appends a conflict entry (`conflicts`, increasing sequence). `previous` is the participant's own value of
    /// that kind before the row (empty: none), which it keeps.
    private mutating func recordConflict(
        identKey: UnsafeRawBufferPointer, version: Int64, kind: MembershipFilter.Kind, value: [UInt8],
        previous: [UInt8], pid: UInt64, other: UInt64
    ) throws {
        if seenAt == nil { seenAt = ISO8601DateFormatter().string(from: Date()) }
        if conflictSeq == nil {
            guard let last = try txn.last(store.conflictsDB) else {
                conflictSeq = 0
                return try recordConflict(
                    identKey: identKey, version: version, kind: kind, value: value, previous: previous, pid: pid,
                    other: other)
            }
            guard last.key.count == 8 else {
                throw StorageError(code: .corrupted, message: "a conflicts key in \(path) is not 8 bytes")
            }
            conflictSeq = last.key.withUnsafeBytes { loadBE($0) }
        }
        conflictSeq! += 1
        let sep = identKey.firstIndex(of: 0)!
        var json = JSONWriter(reservingCapacity: 256)
        json.beginObject()
        json.key("seq")
        json.uint(conflictSeq!)
        json.key("scope")
        json.string(utf8: UnsafeRawBufferPointer(rebasing: identKey[0..<sep]))
        json.key("external_id")
        json.string(utf8: UnsafeRawBufferPointer(rebasing: identKey[(sep + 1)...]))
        json.key("commit_version")
        json.int(version)
        json.key("key")
        json.string(kind == .email ? "email" : "phone")
        json.key("value")
        value.withUnsafeBytes { json.string(utf8: $0) }
        json.key("participant_id")
        json.uint(pid)
        json.key("other_participant_id")
        json.uint(other)
        // What was kept: the value stays with `other_participant_id` (the index's owner); the row's participant
        // keeps its own previous value for matching (null: none).
        json.key("previous_value")
        if previous.isEmpty { json.null() } else { previous.withUnsafeBytes { json.string(utf8: $0) } }
        json.key("seen_at")
        json.string(seenAt)
        json.endObject()
        try json.bytes.withUnsafeBytes { v in
            try withBE(conflictSeq!) { try txn.put(store.conflictsDB, key: $0, value: v, flags: .append) }
        }
    }
}
