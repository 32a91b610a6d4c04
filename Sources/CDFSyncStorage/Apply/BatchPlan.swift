import CDFSyncCore

/// The order a batch's rows are looked at, computed from their external ids alone (no LMDB): rows sorted by id in
/// the identity index's order (memcmp of the bytes), and rows of the same id by their position in the batch. Each
/// run of equal ids is a *group*: one source key.
///
/// Apply walks the groups in this order (the index's pages are then visited in order, and keys new to the index are
/// appended), and the rows of a group in batch order, so that every row of a key is applied as if alone, one after
/// the other — the result a batch of one row at a time would give.
struct BatchPlan {
    /// Row indices sorted by id, then by position (with the prefixes they were sorted by).
    private let keys: [SortKey]
    /// Group `g` is `sorted[groupStart[g]..<groupStart[g + 1]]`.
    let groupStart: [Int]
    /// The group of each row (by row index).
    let groupOf: [Int32]

    /// The number of distinct ids.
    var groupCount: Int { groupStart.count - 1 }

    /// Row indices sorted by id, then by position.
    var sorted: [Int] { keys.map(\.index) }

    /// A row of group `g` (its first in batch order): the one whose id names the group.
    func firstRow(of g: Int) -> Int { keys[groupStart[g]].index }

    /// The rows of group `g`, in batch order.
    func rows(of g: Int) -> LazyMapSequence<ArraySlice<SortKey>, Int> {
        keys[groupStart[g]..<groupStart[g + 1]].lazy.map(\.index)
    }

    /// The plan of `count` rows whose ids are `ids[offsets[i]..<offsets[i + 1]]`.
    init(ids: UnsafeRawBufferPointer, offsets: [Int], count: Int) {
        precondition(offsets.count >= count + 1, "offsets must bound every row")
        // Sort by an 8-byte big-endian prefix (taken after the bytes every id shares) first, one integer compare,
        // then by the full bytes, then by position. Prefix order agrees with memcmp order.
        var keys = [SortKey]()
        keys.reserveCapacity(count)
        // Ids in a batch often share a long prefix ("ext-0000…", a tenant prefix); skip what all share so the
        // 8-byte integer prefix discriminates.
        var common = count == 0 ? 0 : offsets[1] - offsets[0]
        if count > 1 {
            for i in 1..<count where common > 0 {
                let n = min(common, offsets[i + 1] - offsets[i])
                var j = 0
                while j < n && ids[offsets[i] + j] == ids[offsets[0] + j] { j += 1 }
                common = j
            }
        }
        for i in 0..<count {
            var prefix: UInt64 = 0
            let start = offsets[i] + common
            let n = max(0, min(8, offsets[i + 1] - start))
            for j in 0..<n { prefix |= UInt64(ids[start + j]) << (56 - 8 * UInt64(j)) }
            keys.append(SortKey(prefix: prefix, index: i))
        }
        func id(_ i: Int) -> UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: ids[offsets[i]..<offsets[i + 1]]) }
        keys.sort { a, b in
            if a.prefix != b.prefix { return a.prefix < b.prefix }
            let c = compareBytes(id(a.index), id(b.index))
            return c != 0 ? c < 0 : a.index < b.index
        }
        var starts: [Int] = []
        starts.reserveCapacity(count + 1)
        var groupOf = [Int32](repeating: 0, count: count)
        var k = 0
        while k < count {
            starts.append(k)
            let g = Int32(starts.count - 1)
            groupOf[keys[k].index] = g
            var j = k + 1
            while j < count, keys[j].prefix == keys[k].prefix, compareBytes(id(keys[j].index), id(keys[k].index)) == 0 {
                groupOf[keys[j].index] = g
                j += 1
            }
            k = j
        }
        starts.append(count)
        self.keys = keys
        self.groupStart = starts
        self.groupOf = groupOf
    }
}
