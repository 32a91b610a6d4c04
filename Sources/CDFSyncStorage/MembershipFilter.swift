internal import CLMDB  // cdfsync_prefetch_for_write (shim.h), not LMDB
import CDFSyncCore
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A Bloom filter over byte strings, tagged by kind (identity key, email, phone).
///
/// `mayContain == false` is exact (no false negatives: every key is inserted before the transaction that
/// writes it commits, and nothing is ever removed); `true` may be a false positive (about 1 % at 10 bits and
/// 7 probes per key; a little more with the cache-line-blocked layout used here), which only costs an LMDB probe. Memory: `capacity × 10` bits, 1.25 MB per million keys;
/// ``PanelStore`` rebuilds it with twice the capacity before a batch could exceed it.
///
/// Not thread-safe; ``PanelStore`` touches it only while holding its writer lock.
final class MembershipFilter {
    static let bitsPerKey = 10
    static let probes = 7

    /// The bits, `blocks × 8` words, owned by the filter (raw storage: a probe in the apply loop pays no
    /// exclusivity or copy-on-write check).
    private let storage: UnsafeMutableBufferPointer<UInt64>
    /// The number of 512-bit blocks (`bitsPerKey` per key of capacity, rounded up to a block).
    private let blocks: UInt64
    /// Keys the filter was sized for.
    let capacity: Int
    /// Insertions so far (an upper bound of the distinct keys).
    private(set) var count = 0

    init(capacity: Int) {
        let blockCount = max(1, (max(capacity, 1) * Self.bitsPerKey + 511) / 512)
        self.capacity = blockCount * 512 / Self.bitsPerKey
        storage = .allocate(capacity: blockCount * 8)
        storage.initialize(repeating: 0)
        blocks = UInt64(blockCount)
    }

    /// A filter of `blockCount` blocks whose bits the caller fills in (a file read straight into the storage).
    private init(uninitializedBlocks blockCount: Int) {
        capacity = blockCount * 512 / Self.bitsPerKey
        storage = .allocate(capacity: blockCount * 8)
        blocks = UInt64(blockCount)
    }

    deinit { storage.deallocate() }

    /// A copy of the bits (for tests and the saved form).
    var words: [UInt64] { Array(storage) }

    // MARK: Saved form

    /// File layout: magic, the store's transaction id the filter describes, count, block count (each a
    /// little-endian UInt64), the words, then a `StableHash` of everything before it.
    static let magic: UInt64 = 0x3130_464D_5346_4443  // "CDFSMF01"

    /// The header words of the saved form describing the store at `transactionID`.
    private func savedHeader(transactionID: Int) -> [UInt64] {
        [Self.magic, UInt64(transactionID), UInt64(count), blocks]
    }

    /// The saved form's checksum: `StableHash` of the 32 header bytes and the bits, as if one buffer.
    private static func checksum(header: UnsafeRawBufferPointer, bits: UnsafeRawBufferPointer) -> UInt64 {
        var h = StableHash()
        h.combinePiece(header)
        h.combinePiece(bits)
        h.endPieces(totalCount: header.count + bits.count)
        return h.value
    }

    /// The number of blocks a saved form of `size` bytes with these header words holds, if it is this format,
    /// describes transaction `transactionID` and has the size its block count says.
    private static func savedBlockCount(header: [UInt64], size: Int, transactionID: Int) -> Int? {
        let n = Int(truncatingIfNeeded: header[3])
        guard header[0] == magic, header[1] == UInt64(transactionID), n > 0, 32 + n * 64 + 8 == size else { return nil }
        return n
    }

    /// The filter as bytes describing the store at `transactionID`.
    func serialized(transactionID: Int) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(40 + storage.count * 8)
        for v in savedHeader(transactionID: transactionID) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        for v in storage { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        let sum = out.withUnsafeBytes {
            Self.checksum(header: UnsafeRawBufferPointer(rebasing: $0[0..<32]), bits: UnsafeRawBufferPointer(rebasing: $0[32...]))
        }
        withUnsafeBytes(of: sum.littleEndian) { out.append(contentsOf: $0) }
        return out
    }

    /// A filter read back from `serialized(transactionID:)`, or nil when the bytes are damaged, truncated or
    /// describe another transaction than `transactionID` (the caller then rebuilds from the store).
    static func deserialize(_ bytes: [UInt8], transactionID: Int) -> MembershipFilter? {
        guard bytes.count >= 40 + 64 else { return nil }
        return bytes.withUnsafeBytes { raw -> MembershipFilter? in
            func u64(_ at: Int) -> UInt64 { UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: UInt64.self)) }
            guard let blockCount = savedBlockCount(
                header: (0..<4).map { u64($0 * 8) }, size: raw.count, transactionID: transactionID),
                checksum(header: UnsafeRawBufferPointer(rebasing: raw[0..<32]),
                    bits: UnsafeRawBufferPointer(rebasing: raw[32..<(raw.count - 8)])) == u64(raw.count - 8)
            else { return nil }
            let f = MembershipFilter(uninitializedBlocks: blockCount)
            for i in 0..<f.storage.count { f.storage[i] = u64(32 + i * 8) }
            f.count = Int(truncatingIfNeeded: u64(16))
            return f
        }
    }

    // MARK: Saved form, as a file

    /// Writes ``serialized(transactionID:)``'s bytes to `path`, the bits straight from the filter's storage (at
    /// 10 M keys they are tens of megabytes: building the array, hashing it, and copying it into `Data` cost a
    /// quarter of a second at the end of every run). Returns whether every byte was written.
    func write(toFile path: String, transactionID: Int) -> Bool {
        #if _endian(little)
        guard let fd = try? PrivateFiles.open(path, flags: O_WRONLY | O_TRUNC) else { return false }
        defer { close(fd) }
        var header = savedHeader(transactionID: transactionID)
        let bits = UnsafeRawBufferPointer(storage)
        header.append(header.withUnsafeBytes { Self.checksum(header: $0, bits: bits) })
        return header.withUnsafeBytes { Self.writeAll(fd, UnsafeRawBufferPointer(rebasing: $0[0..<32])) }
            && Self.writeAll(fd, bits)
            && header.withUnsafeBytes { Self.writeAll(fd, UnsafeRawBufferPointer(rebasing: $0[32..<40])) }
        #else
        return FileManager.default.createFile(atPath: path, contents: Data(serialized(transactionID: transactionID)))
        #endif
    }

    /// The filter saved in `path` by ``write(toFile:transactionID:)`` if it describes transaction `transactionID`
    /// and its checksum holds, read straight into a new filter's storage; nil otherwise (missing, damaged,
    /// truncated, or another transaction's).
    static func read(fromFile path: String, transactionID: Int) -> MembershipFilter? {
        #if _endian(little)
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        let size = Int(lseek(fd, 0, SEEK_END))
        var header = [UInt64](repeating: 0, count: 5)
        guard size >= 40 + 64,
            header.withUnsafeMutableBytes({ readAll(fd, UnsafeMutableRawBufferPointer(rebasing: $0[0..<32]), at: 0) }),
            let blockCount = savedBlockCount(header: header, size: size, transactionID: transactionID)
        else { return nil }
        let f = MembershipFilter(uninitializedBlocks: blockCount)
        let bits = UnsafeMutableRawBufferPointer(f.storage)
        guard readAll(fd, bits, at: 32),
            header.withUnsafeMutableBytes({ readAll(fd, UnsafeMutableRawBufferPointer(rebasing: $0[32..<40]), at: 32 + bits.count) }),
            header.withUnsafeBytes({ checksum(header: UnsafeRawBufferPointer(rebasing: $0[0..<32]), bits: UnsafeRawBufferPointer(bits)) })
                == header[4]
        else { return nil }
        f.count = Int(truncatingIfNeeded: header[2])
        return f
        #else
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return deserialize(Array(data), transactionID: transactionID)
        #endif
    }

    private static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Bool {
        var done = 0
        while done < bytes.count {
            let n = Glibc.write(fd, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return false }
            done += n
        }
        return true
    }

    private static func readAll(_ fd: Int32, _ bytes: UnsafeMutableRawBufferPointer, at offset: Int) -> Bool {
        var done = 0
        while done < bytes.count {
            let n = pread(fd, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return false }
            done += n
        }
        return true
    }

    enum Kind: UInt8 { case ident = 1, email = 2, phone = 3 }

    @inline(__always)
    static func hash(_ kind: Kind, _ bytes: UnsafeRawBufferPointer) -> (UInt64, UInt64) {
        var h = StableHash()
        var tag = kind.rawValue
        withUnsafeBytes(of: &tag) { h.combine($0) }
        h.combine(bytes)
        let a = h.value
        // A second, independent-enough hash for double hashing (odd, so probes cycle through the table).
        var z = a ^ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 33)) &* 0xFF51_AFD7_ED55_8CCD
        z = (z ^ (z >> 33)) &* 0xC4CE_B9FE_1A85_EC53
        return (a, (z ^ (z >> 33)) | 1)
    }

    /// Where a key's bits are: the word index of its block and seven 9-bit slices naming the bits in the block.
    /// Computed once per key and used for both the lookup and the insert.
    struct Probe {
        fileprivate var base: Int
        fileprivate var slices: UInt64
    }

    // Blocked layout: the first hash picks one 512-bit block (one cache line), 9-bit slices of the second pick
    // the 7 bits inside it, so a lookup or insert touches one cache line instead of seven.

    @inline(__always)
    func probe(_ kind: Kind, _ bytes: UnsafeRawBufferPointer) -> Probe {
        let (a, b) = Self.hash(kind, bytes)
        return Probe(base: Int(a.multipliedFullWidth(by: blocks).high) * 8, slices: b)
    }

    @inline(__always)
    func insert(_ p: Probe) {
        let w = storage.baseAddress! + p.base
        for i in 0..<Self.probes {
            let bit = (p.slices >> (9 * UInt64(i))) & 511
            w[Int(bit >> 6)] |= 1 << (bit & 63)
        }
        count += 1
    }

    @inline(__always)
    func mayContain(_ p: Probe) -> Bool {
        let w = storage.baseAddress! + p.base
        var missing: UInt64 = 0
        for i in 0..<Self.probes {
            let bit = (p.slices >> (9 * UInt64(i))) & 511
            missing |= ~w[Int(bit >> 6)] & (1 << (bit & 63))
        }
        return missing == 0
    }

    /// Starts fetching the cache line of `p`'s block (a hint: a later `mayContain` or `insert` of `p` then finds
    /// it in cache instead of waiting for memory).
    @inline(__always)
    func prefetch(_ p: Probe) {
        cdfsync_prefetch_for_write(UnsafeRawPointer(storage.baseAddress! + p.base))
    }

    /// For each probe in order: whether the filter may contain it, then inserts it when it did not — so a later
    /// probe equal to an earlier one answers "may contain". Blocks are prefetched a few probes ahead, so the
    /// misses of a batch overlap instead of following one another (a block is one cache line; the filter is
    /// megabytes, so nearly every probe misses).
    ///
    /// A key inserted here before its write is committed only adds a false positive if that write never
    /// happens (an aborted transaction), which costs an LMDB probe, never a wrong answer.
    func lookUpAndInsert(_ lookups: inout [(probe: Probe, maybeKnown: Bool)]) {
        let ahead = 12
        let n = lookups.count
        lookups.withUnsafeMutableBufferPointer { l in
            for j in 0..<min(ahead, n) { prefetch(l[j].probe) }
            for j in 0..<n {
                if j + ahead < n { prefetch(l[j + ahead].probe) }
                let known = mayContain(l[j].probe)
                if !known { insert(l[j].probe) }
                l[j].maybeKnown = known
            }
        }
    }

    func insert(_ kind: Kind, _ bytes: UnsafeRawBufferPointer) { insert(probe(kind, bytes)) }
    func mayContain(_ kind: Kind, _ bytes: UnsafeRawBufferPointer) -> Bool { mayContain(probe(kind, bytes)) }

    func insert(_ kind: Kind, _ bytes: [UInt8]) { bytes.withUnsafeBytes { insert(kind, $0) } }
    func mayContain(_ kind: Kind, _ bytes: [UInt8]) -> Bool { bytes.withUnsafeBytes { mayContain(kind, $0) } }
}

@available(*, unavailable)
extension MembershipFilter: Sendable {}
