import CDFSyncCore

extension PanelStore {
    /// A batch of changes stored flat: every external id in one byte buffer, every record in another, with
    /// offsets, versions and content hashes beside them.
    ///
    /// Building, handing over and applying a batch therefore allocates per batch, not per row: a reader appends
    /// rows from a reused buffer, the writer thread slices the buffers, and releasing the batch frees a handful of
    /// arrays. Memory is close to the bytes the rows hold (``byteCount``), which is what lets the engine bound a
    /// batch by bytes as well as by rows.
    ///
    /// ``PanelStore/apply(_:scope:pipeline:checkpoint:run:)-(ChangeBatch,_,_,_,_)`` gives the same result as
    /// applying the equivalent `[Change]`.
    public struct ChangeBatch: Sendable {
        /// External id bytes; row `i` is `ids[idOffsets[i]..<idOffsets[i + 1]]`.
        private(set) var ids: [UInt8] = []
        private(set) var idOffsets: [Int] = [0]
        /// Record bytes; row `i` is `records[recordOffsets[i]..<recordOffsets[i + 1]]`.
        private(set) var records: [UInt8] = []
        private(set) var recordOffsets: [Int] = [0]
        private(set) var versions: [Int64] = []
        /// `StableHash` of each record, computed when the row is appended.
        private(set) var hashes: [UInt64] = []
        /// Emails and phones, kept only once a row has one (most change feeds mapped without them never allocate).
        private(set) var emails: [String?]? = nil
        private(set) var phones: [String?]? = nil
        /// Per row, whether its consent value is opted in; kept only once a row is not (``optedIn(_:)``).
        private(set) var consent: [Bool]? = nil
        /// zstd frames of large records, by row (see ``prepare(compressor:threshold:)``).
        private(set) var frames: [Int: [UInt8]] = [:]
        /// Shaped forms of the records (see ``RecordShape``), for rows `0..<rowShapes.count` (those ``prepare`` has
        /// seen): row `i`'s values are `shapedValues[shapedOffsets[i]..<shapedOffsets[i + 1]]` under the keys
        /// `shapeKeys[rowShapes[i]]`; `rowShapes[i] == -1` stores the record as it is (not a flat object, or it
        /// has a frame).
        private(set) var shapedValues: [UInt8] = []
        private(set) var shapedOffsets: [Int] = [0]
        private(set) var rowShapes: [Int32] = []
        private(set) var shapeKeys: [[UInt8]] = []
        /// Per shape of `shapeKeys`: the length of its records minus that of their values (0: malformed keys).
        private(set) var shapeExtra: [Int] = []
        /// Noted as rows are appended (on the thread building the batch, while the bytes are in its cache), so
        /// that apply checks its input without walking the batch again: the rows whose record is not a JSON
        /// object (`{…}`), and the longest external id, email and phone in bytes.
        private(set) var nonObjectRecords = 0
        private(set) var longestID = 0
        private(set) var longestContact = 0

        /// An empty batch with room for `rows` rows holding about `bytes` bytes of records.
        public init(reservingRows rows: Int = 0, bytes: Int = 0) {
            if rows > 0 {
                idOffsets.reserveCapacity(rows + 1)
                recordOffsets.reserveCapacity(rows + 1)
                versions.reserveCapacity(rows)
                hashes.reserveCapacity(rows)
                ids.reserveCapacity(rows * 16)
            }
            if bytes > 0 { records.reserveCapacity(bytes) }
        }

        /// An empty batch with room for `rows` rows and the bytes `other` holds (records and shaped values), so a
        /// steady stream of batches reallocates nothing.
        public init(reservingRows rows: Int, like other: ChangeBatch) {
            // An eighth to spare: batches are reused (emptied, capacity kept), and one a little larger than the
            // batch it was sized from would otherwise double its buffers into fresh memory.
            self.init(reservingRows: rows, bytes: other.records.count + other.records.count / 8)
            if !other.shapedValues.isEmpty {
                shapedValues.reserveCapacity(other.shapedValues.count + other.shapedValues.count / 8)
                shapedOffsets.reserveCapacity(rows + 1)
                rowShapes.reserveCapacity(rows)
            }
        }

        /// The batch holding `changes`, in order (their precomputed hashes and frames are kept).
        public init(_ changes: [Change]) {
            self.init(reservingRows: changes.count, bytes: changes.reduce(0) { $0 + $1.record.count })
            for c in changes {
                c.record.withUnsafeBytes { r in
                    append(
                        externalID: c.externalID, commitVersion: c.commitVersion, record: r, email: c.email,
                        phone: c.phone, optedIn: c.optedIn, contentHash: c.contentHash)
                }
                if let frame = c.compressedRecord {
                    frames[count - 1] = frame
                    frameBytes += frame.count
                }
            }
        }

        /// Rows in the batch.
        public var count: Int { versions.count }
        public var isEmpty: Bool { versions.isEmpty }

        /// Bytes held by ids, records and frames (the batch's memory, give or take 40 bytes a row).
        public var byteCount: Int { ids.count + records.count + frameBytes + shapedValues.count }
        private var frameBytes = 0

        /// Bytes the batch's id, record and shaped-value buffers have room for (what it keeps after ``removeAll()``).
        public var reservedBytes: Int { ids.capacity + records.capacity + shapedValues.capacity }

        /// Appends a row; `record` is copied (it must be a JSON object, which apply checks).
        public mutating func append(
            externalID: String, commitVersion: Int64, record: UnsafeRawBufferPointer, email: String? = nil,
            phone: String? = nil, optedIn: Bool = true, contentHash: UInt64? = nil
        ) {
            var id = externalID
            id.withUTF8 {
                append(
                    externalIDBytes: UnsafeRawBufferPointer($0), commitVersion: commitVersion, record: record, email: email,
                    phone: phone, optedIn: optedIn, contentHash: contentHash)
            }
        }

        /// Appends a row whose external id is given as its bytes, which must be valid UTF-8 (the bytes a `String`
        /// would hold); `record` is copied. `optedIn: false` marks a row whose consent value is not opted in: apply
        /// imports it only when its identity resolves to a participant the panel holds at that moment (docs/pipelines.md).
        public mutating func append(
            externalIDBytes: UnsafeRawBufferPointer, commitVersion: Int64, record: UnsafeRawBufferPointer,
            email: String? = nil, phone: String? = nil, optedIn: Bool = true, contentHash: UInt64? = nil
        ) {
            ids.append(contentsOf: externalIDBytes)
            note(idLength: externalIDBytes.count, record: record, email: email, phone: phone)
            idOffsets.append(ids.count)
            records.append(contentsOf: record)
            recordOffsets.append(records.count)
            versions.append(commitVersion)
            hashes.append(contentHash ?? {
                var h = StableHash()
                h.combine(record)
                return h.value
            }())
            if email != nil || emails != nil {
                if emails == nil { emails = [String?](repeating: nil, count: count - 1) }
                emails!.append(email)
            }
            if phone != nil || phones != nil {
                if phones == nil { phones = [String?](repeating: nil, count: count - 1) }
                phones!.append(phone)
            }
            if !optedIn || consent != nil {
                if consent == nil { consent = [Bool](repeating: true, count: count - 1) }
                consent!.append(optedIn)
            }
        }

        /// Appends a row whose record the caller wrote as a flat JSON object under known keys, saying where each
        /// top-level value is: `valueRanges` holds a start and an end offset into `record` per value, in key order;
        /// `keys` is the object's shape in its saved form (``ShapeKeys``: each key as written, quotes included, after
        /// its 2-byte big-endian length), the same array for every row of a shape (compared by identity first). The
        /// record is then stored shaped (``RecordShape``) without splitting it again. No value may contain a byte
        /// below 0x20 (JSON the decoder or the writer checked has none). A row whose keys and values do not make a
        /// record of its length is stored as given. Rows appended before without a shape that `prepare` has not
        /// seen yet are then stored as they are.
        public mutating func append(
            externalID: String, commitVersion: Int64, record: UnsafeRawBufferPointer, shape keys: [UInt8],
            valueRanges: UnsafeBufferPointer<Int>, email: String? = nil, phone: String? = nil, optedIn: Bool = true
        ) {
            var id = externalID
            id.withUTF8 {
                append(
                    externalIDBytes: UnsafeRawBufferPointer($0), commitVersion: commitVersion, record: record,
                    shape: keys, valueRanges: valueRanges, email: email, phone: phone, optedIn: optedIn)
            }
        }

        /// Appends a shaped row (as ``append(externalID:commitVersion:record:shape:valueRanges:email:phone:optedIn:)``)
        /// whose external id is given as its bytes, which must be valid UTF-8 — the bytes `String` would hold: the
        /// record writer passes a result value's bytes as they are, without making a `String` of each row's key.
        public mutating func append(
            externalIDBytes: UnsafeRawBufferPointer, commitVersion: Int64, record: UnsafeRawBufferPointer,
            shape keys: [UInt8], valueRanges: UnsafeBufferPointer<Int>, email: String? = nil, phone: String? = nil,
            optedIn: Bool = true
        ) {
            leaveUnshaped()
            append(
                externalIDBytes: externalIDBytes, commitVersion: commitVersion, record: record, email: email, phone: phone,
                optedIn: optedIn, contentHash: nil)
            var shape = Int32(Self.index(of: keys, in: &shapeKeys, last: shapeKeys.count - 1))
            syncShapeExtra()
            // The values joined by separators; a cheap guard on the caller's ranges: in order, inside the record, and
            // with the shape's keys they make a record of the record's length (else the row is stored as given).
            var valuesCount = valueRanges.count / 2 - 1
            var previousEnd = 0
            var ordered = valueRanges.count >= 2 && valueRanges.count % 2 == 0
            var m = 0
            while ordered && m + 1 < valueRanges.count {
                let (start, end) = (valueRanges[m], valueRanges[m + 1])
                ordered = start >= previousEnd && end >= start && end <= record.count
                valuesCount += end - start
                previousEnd = end
                m += 2
            }
            if shape >= 0, !ordered || shapeExtra[Int(shape)] == 0 || shapeExtra[Int(shape)] + valuesCount != record.count {
                shape = -1
            }
            if shape >= 0 {
                if shapedValues.capacity == 0 { shapedValues.reserveCapacity(records.capacity) }
                let first = shapedValues.count
                var m = 0
                while m + 1 < valueRanges.count {
                    if m > 0 { shapedValues.append(RecordShape.separator) }
                    shapedValues.append(contentsOf: UnsafeRawBufferPointer(rebasing: record[valueRanges[m]..<valueRanges[m + 1]]))
                    m += 2
                }
                // Debug builds join them back and compare the bytes for the first row of a batch and every 256th (a
                // caller's mistake is systematic; checking every row made debug syncs 7× slower).
                assert(count % 256 != 1 || {
                    var joined: [UInt8] = []
                    return keys.withUnsafeBytes { k in
                        shapedValues.withUnsafeBytes { v in
                            RecordShape.join(keys: k, values: UnsafeRawBufferPointer(rebasing: v[first...]), into: &joined)
                        }
                    } && joined.elementsEqual(record)
                }(), "value ranges given for a record of \(String(decoding: externalIDBytes, as: UTF8.self)) do not join back to it")
            }
            rowShapes.append(shape)
            shapedOffsets.append(shapedValues.count)
        }

        /// Rows not seen by ``shape(threshold:)`` yet are stored as they are.
        private mutating func leaveUnshaped() {
            while rowShapes.count < count {
                rowShapes.append(-1)
                shapedOffsets.append(shapedValues.count)
            }
        }

        /// The index of `keys` in `shapes` — `last` tried first (a batch has one shape or a few) — appending it if
        /// there is room; -1 when the batch holds ``maxShapesPerBatch`` other shapes.
        private static func index(of keys: [UInt8], in shapes: inout [[UInt8]], last: Int) -> Int {
            if last >= 0 && shapes[last] == keys { return last }
            if let known = shapes.firstIndex(of: keys) { return known }
            guard shapes.count < maxShapesPerBatch else { return -1 }
            shapes.append(keys)
            return shapes.count - 1
        }

        private mutating func syncShapeExtra() {
            while shapeExtra.count < shapeKeys.count {
                shapeExtra.append(shapeKeys[shapeExtra.count].withUnsafeBytes {
                    RecordShape.joinedCount(keys: $0, valuesCount: 0) ?? 0
                })
            }
        }

        /// Appends `change` (keeping its precomputed hash and frame).
        public mutating func append(_ change: Change) {
            change.record.withUnsafeBytes { r in
                append(
                    externalID: change.externalID, commitVersion: change.commitVersion, record: r, email: change.email,
                    phone: change.phone, optedIn: change.optedIn, contentHash: change.contentHash)
            }
            if let frame = change.compressedRecord {
                frames[count - 1] = frame
                frameBytes += frame.count
            }
        }

        /// Drops rows `n...` (e.g. those of a chunk that failed half-way).
        public mutating func truncate(to n: Int) {
            precondition(n >= 0 && n <= count, "truncate(to: \(n)) on a batch of \(count)")
            guard n < count else { return }
            ids.removeSubrange(idOffsets[n]...)
            idOffsets.removeSubrange((n + 1)...)
            records.removeSubrange(recordOffsets[n]...)
            recordOffsets.removeSubrange((n + 1)...)
            versions.removeSubrange(n...)
            hashes.removeSubrange(n...)
            if emails != nil { emails!.removeSubrange(n...) }
            if phones != nil { phones!.removeSubrange(n...) }
            if consent != nil { consent!.removeSubrange(n...) }
            frames = frames.filter { $0.key < n }
            frameBytes = frames.values.reduce(0) { $0 + $1.count }
            if rowShapes.count > n {
                shapedValues.removeSubrange(shapedOffsets[n]...)
                shapedOffsets.removeSubrange((n + 1)...)
                rowShapes.removeSubrange(n...)
            }
            nonObjectRecords = 0
            longestID = 0
            longestContact = 0
            let kept = records  // shares the storage; `note` needs `self` whole
            kept.withUnsafeBytes { r in
                for i in 0..<n {
                    note(
                        idLength: idOffsets[i + 1] - idOffsets[i],
                        record: UnsafeRawBufferPointer(rebasing: r[recordOffsets[i]..<recordOffsets[i + 1]]),
                        email: email(i), phone: phone(i))
                }
            }
        }

        /// Notes what apply checks about a row (see `nonObjectRecords`).
        private mutating func note(idLength: Int, record: UnsafeRawBufferPointer, email: String?, phone: String?) {
            longestID = max(longestID, idLength)
            if !Self.isObject(record) { nonObjectRecords += 1 }
            longestContact = max(longestContact, email?.utf8.count ?? 0, phone?.utf8.count ?? 0)
        }

        /// Whether `record` has the shape of a JSON object: at least `{}`, first byte `{`, last byte `}`.
        @inline(__always)
        static func isObject(_ record: UnsafeRawBufferPointer) -> Bool {
            record.count >= 2 && record[0] == UInt8(ascii: "{") && record[record.count - 1] == UInt8(ascii: "}")
        }

        /// Empties the batch, keeping its capacity.
        public mutating func removeAll() {
            ids.removeAll(keepingCapacity: true)
            idOffsets.removeAll(keepingCapacity: true)
            idOffsets.append(0)
            records.removeAll(keepingCapacity: true)
            recordOffsets.removeAll(keepingCapacity: true)
            recordOffsets.append(0)
            versions.removeAll(keepingCapacity: true)
            hashes.removeAll(keepingCapacity: true)
            emails = nil
            phones = nil
            consent = nil
            frames = [:]
            frameBytes = 0
            shapedValues.removeAll(keepingCapacity: true)
            shapedOffsets.removeAll(keepingCapacity: true)
            shapedOffsets.append(0)
            rowShapes.removeAll(keepingCapacity: true)
            shapeKeys.removeAll()
            shapeExtra.removeAll()
            nonObjectRecords = 0
            longestID = 0
            longestContact = 0
        }

        /// The external id of row `i`.
        public func externalID(_ i: Int) -> String {
            ids.withUnsafeBufferPointer { String(decoding: $0[idOffsets[i]..<idOffsets[i + 1]], as: UTF8.self) }
        }

        public func commitVersion(_ i: Int) -> Int64 { versions[i] }

        /// Lends the record bytes of row `i`.
        public func withRecord<R>(_ i: Int, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
            try records.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[recordOffsets[i]..<recordOffsets[i + 1]])) }
        }

        func email(_ i: Int) -> String? { emails?[i] }
        func phone(_ i: Int) -> String? { phones?[i] }
        /// Whether row `i`'s consent value is opted in (rows of a mapping without consent always are).
        public func optedIn(_ i: Int) -> Bool { consent?[i] ?? true }

        /// Row `i` as a ``Change`` (allocates; for the slow paths).
        public subscript(i: Int) -> Change {
            Change(
                externalID: externalID(i), commitVersion: versions[i], record: withRecord(i) { Array($0) },
                email: email(i), phone: phone(i), optedIn: optedIn(i), contentHash: hashes[i],
                compressedRecord: frames[i])
        }

        /// Compresses every record of at least `threshold` bytes with `compressor` (the caller's thread and
        /// context) and splits the others into shape and values (``RecordShape``), so that apply stores them
        /// without compressing or splitting inside its write transaction. The stored bytes are the same either way.
        /// `shaping: false` leaves the records not split yet as they are: they are stored as given (for a batch
        /// that will mostly write nothing, such as a replay of an applied range, splitting would be wasted work).
        public mutating func prepare(compressor: ZstdCompressor, threshold: Int = 512, shaping: Bool = true) throws {
            for i in 0..<count where recordOffsets[i + 1] - recordOffsets[i] >= threshold && frames[i] == nil {
                let frame = try withRecord(i) { try compressor.compress($0) }
                frames[i] = frame
                frameBytes += frame.count
            }
            if shaping { shape(threshold: threshold) } else { leaveUnshaped() }
        }

        /// At most this many shapes per batch; rows of further shapes are stored as they are.
        static let maxShapesPerBatch = 64

        /// Splits the records shorter than `threshold` that have no frame and were not split yet into shape and
        /// values (``RecordShape``).
        mutating func shape(threshold: Int) {
            let first = rowShapes.count
            guard first < count else { return }
            // Values never take more room than their records: one buffer of that bound, written through a pointer.
            let kept = shapedOffsets[first]
            let bound = kept + records.count - recordOffsets[first]
            var shapes = shapeKeys
            var rows = rowShapes
            var offsets = shapedOffsets
            rows.reserveCapacity(count)
            offsets.reserveCapacity(count + 1)
            let previous = shapedValues
            shapedValues = records.withUnsafeBytes { r in
                [UInt8](unsafeUninitializedCapacity: bound) { out, initialized in
                    let base = UnsafeMutableRawPointer(out.baseAddress!)
                    previous.withUnsafeBytes { if kept > 0 { base.copyMemory(from: $0.baseAddress!, byteCount: kept) } }
                    var used = kept
                    var last = -1
                    for i in first..<count {
                        let record = UnsafeRawBufferPointer(rebasing: r[recordOffsets[i]..<recordOffsets[i + 1]])
                        var shape: Int32 = -1
                        if record.count < threshold, frames.isEmpty || frames[i] == nil {
                            let split = last < 0
                                ? RecordShape.split(record, into: base + used, comparingKeys: UnsafeRawBufferPointer(start: nil, count: 0))
                                : shapes[last].withUnsafeBytes { RecordShape.split(record, into: base + used, comparingKeys: $0) }
                            if let split {
                                if !split.keysMatch {
                                    last = Self.index(of: RecordShape.keys(of: record), in: &shapes, last: -1)
                                }
                                if last >= 0 {
                                    shape = Int32(last)
                                    used += split.count
                                }
                            }
                        }
                        rows.append(shape)
                        offsets.append(used)
                    }
                    initialized = used
                }
            }
            shapeKeys = shapes
            syncShapeExtra()
            rowShapes = rows
            shapedOffsets = offsets
        }
    }
}
