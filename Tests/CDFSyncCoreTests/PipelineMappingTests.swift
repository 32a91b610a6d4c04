import CDFSyncCore
import Foundation
import Testing

@Suite("Normalisation")
struct NormalizationTests {
    @Test(arguments: [
        ("  Ana.Lima@Example.COM ", "ana.lima@example.com"), ("a+tag@sub.example.co.uk", "a+tag@sub.example.co.uk"),
    ])
    func validEmails(_ raw: String, _ expected: String) { #expect(Normalize.email(raw) == .value(expected)) }

    @Test(arguments: ["", "plain", "a@b", "a@@b.com", "a b@c.com", "a@b..com", ".a@b.com", "a@-b.com", "a@b.c0m"])
    func invalidEmails(_ raw: String) {
        if case .value(let v) = Normalize.email(raw) { Issue.record("accepted '\(raw)' as \(v)") }
    }

    @Test func phonesBecomeE164() {
        #expect(Normalize.phone("+44 20 7946 0958", defaultRegion: nil) == .value("+442079460958"))
        #expect(Normalize.phone("0044 (20) 7946-0958", defaultRegion: nil) == .value("+442079460958"))
        #expect(Normalize.phone("030 1234567", defaultRegion: "DE") == .value("+49301234567"))
        #expect(Normalize.phone("(415) 555-2671", defaultRegion: "us") == .value("+14155552671"))
        #expect(Normalize.phone("415 555 2671 x12", defaultRegion: "US") == .value("+14155552671"))
        if case .value = Normalize.phone("555-2671", defaultRegion: nil) { Issue.record("no region, no country code") }
        if case .value = Normalize.phone("+12", defaultRegion: nil) { Issue.record("too short") }
        if case .value = Normalize.phone("+1 415 CALL NOW", defaultRegion: nil) { Issue.record("letters") }
    }

    @Test func countriesBecomeAlpha2() {
        for (raw, code) in [("de", "DE"), ("DEU", "DE"), ("Germany", "DE"), (" united kingdom ", "GB"), ("UK", "GB"),
                            ("Viet Nam", "VN"), ("usa", "US"), ("BRA", "BR")] {
            #expect(Normalize.country(raw) == .value(code), "\(raw)")
        }
        if case .value = Normalize.country("Atlantis") { Issue.record("accepted Atlantis") }
        if case .value = Normalize.country("XX") { Issue.record("accepted XX") }
    }
}

/// Rows for mapper tests, as the decoder would deliver them.
struct TestRow: RowValueAccess {
    var values: [String?]
    func withValue<R>(_ i: Int, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R? {
        guard let v = values[i] else { return nil }
        return try Array(v.utf8).withUnsafeBytes(body)
    }
    func string(_ i: Int) -> String? { values[i] }
    func int64(_ i: Int) -> Int64? { values[i].flatMap { Int64($0) } }
}

@Suite("Record mapper")
struct RecordMapperTests {
    let columns = ["pid", "mail", "tel", "land", "consent", "score", "vip", "first"]

    func pipeline(required: [String] = ["external_id"]) -> Pipeline {
        Pipeline(
            name: "p", connection: .init(name: "c"), source: "main.s.t",
            mapping: ["external_id": "pid", "email": "mail", "phone": "tel", "country": "land", "first_name": "first",
                      "consent_status": "consent"],
            attributes: [.init(column: "score", type: .integer), .init(column: "vip", name: "is_vip", type: .boolean)],
            consent: .init(optedIn: ["opted_in", "Yes"]),
            validation: .init(required: required, defaultPhoneRegion: "GB"))
    }

    func map(_ values: [String?], _ p: Pipeline? = nil) throws -> MappedRow {
        let m = try RecordMapper(pipeline: p ?? pipeline(), columns: columns)
        var w = JSONWriter()
        return m.map(TestRow(values: values), into: &w)
    }

    @Test func mapsNormalisesAndTypes() throws {
        let r = try map(["P1", " Ana@Example.com", "020 7946 0958", "germany", "YES", "42", "true", "Ana \"Q\""])
        guard case .participant(let id, let email, let phone, let opted, let record) = r else {
            Issue.record("\(r)")
            return
        }
        #expect(id == "P1" && email == "ana@example.com" && phone == "+442079460958" && opted)
        let obj = try JSONSerialization.jsonObject(with: Data(record)) as! [String: Any]
        #expect(obj["country"] as? String == "DE")
        #expect(obj["first_name"] as? String == "Ana \"Q\"")
        #expect(obj["contactable"] as? Bool == true)
        let attrs = obj["attributes"] as! [String: Any]
        #expect(attrs["score"] as? Int == 42 && attrs["is_vip"] as? Bool == true)
    }

    /// The mapper's shape keys and the value marks it leaves in the writer rebuild the record byte for byte (what
    /// the storage keeps of a shaped record); a `json` attribute turns shaping off.
    @Test func shapeKeysAndValueMarksRebuildTheRecord() throws {
        let m = try RecordMapper(pipeline: pipeline(), columns: columns)
        let keys = try #require(m.shapeKeys)
        var names: [[UInt8]] = []
        var k = 0
        while k < keys.count {
            let n = Int(keys[k]) << 8 | Int(keys[k + 1])
            names.append(Array(keys[(k + 2)..<(k + 2 + n)]))
            k += 2 + n
        }
        #expect(names.map { String(decoding: $0, as: UTF8.self) }.last == "\"attributes\"")
        for values in [
            ["P1", " Ana@Example.com", "020 7946 0958", "germany", "YES", "42", "true", "Ana \"Q\" {,}"],
            ["P2", nil, nil, nil, "no", nil, nil, nil],
        ] {
            var w = JSONWriter()
            guard case .participant(_, _, _, _, let record) = m.map(TestRow(values: values), into: &w) else {
                Issue.record("expected a participant")
                continue
            }
            #expect(w.marks.count == 2 * names.count)
            var rebuilt: [UInt8] = [UInt8(ascii: "{")]
            for (i, name) in names.enumerated() {
                if i > 0 { rebuilt.append(UInt8(ascii: ",")) }
                rebuilt += name + [UInt8(ascii: ":")] + record[w.marks[2 * i]..<w.marks[2 * i + 1]]
            }
            rebuilt.append(UInt8(ascii: "}"))
            #expect(rebuilt == record, "\(String(decoding: record, as: UTF8.self))")
        }
        var p = pipeline()
        p.attributes.append(.init(column: "first", name: "raw", type: .json))
        #expect(try RecordMapper(pipeline: p, columns: columns).shapeKeys == nil)
    }

    /// A field copied as it is: as given (not trimmed), null when empty or all whitespace — ASCII (byte path) or
    /// not (String path) — and "required field … is empty" when required.
    @Test func copiedFieldsAreAsGivenOrNull() throws {
        for (given, expected) in [("  Ana ", "\"  Ana \""), (" \t ", "null"), ("", "null"), ("\u{A0}", "null"),
                                  ("Zoë \u{A0}", "\"Zoë \u{A0}\""), ("a\"b\\c\u{1}", #""a\"b\\c\u0001""#)] {
            guard case .participant(_, _, _, _, let record) = try map(["P1", nil, nil, nil, "yes", nil, nil, given]) else {
                Issue.record("expected a participant for \(given.debugDescription)")
                continue
            }
            #expect(String(decoding: record, as: UTF8.self).contains("\"first_name\":\(expected),"), "\(given.debugDescription)")
        }
        var p = pipeline(required: ["external_id", "first_name"])
        p.validation.required = ["external_id", "first_name"]
        for blank in ["  ", "\u{A0}"] {
            #expect(try map(["P1", nil, nil, nil, "yes", nil, nil, blank], p) == .invalid("required field first_name is empty"))
        }
    }

    @Test func consentOtherThanOptedInIsNotContactable() throws {
        guard case .participant(_, _, _, let opted, let record) = try map(["P1", nil, nil, nil, "opted_out", nil, nil, nil]) else {
            Issue.record("expected a participant")
            return
        }
        #expect(!opted)
        #expect(String(decoding: record, as: UTF8.self).contains("\"contactable\":false"))
    }

    @Test func invalidRowsNameTheProblem() throws {
        #expect(try map(["P1", "not-an-email", nil, nil, "yes", nil, nil, nil]) == .invalid("email 'not-an-email' must contain exactly one @"))
        if case .invalid(let why) = try map(["P1", nil, nil, nil, "yes", "4x", nil, nil]) { #expect(why.contains("attribute score")) } else { Issue.record("bad integer accepted") }
        if case .invalid(let why) = try map(["P1", nil, nil, "Narnia", "yes", nil, nil, nil]) { #expect(why.contains("Narnia")) } else { Issue.record("bad country accepted") }
        if case .invalid(let why) = try map(["  ", nil, nil, nil, "yes", nil, nil, nil]) { #expect(why.contains("external_id")) } else { Issue.record("empty key accepted") }
        if case .invalid(let why) = try map(["P1", nil, nil, nil, "yes", nil, nil, nil], pipeline(required: ["external_id", "email"])) {
            #expect(why.contains("email"))
        } else { Issue.record("missing required email accepted") }
    }

    @Test func missingColumnNamesTheMapping() {
        #expect(throws: SQLBuildError.self) { try RecordMapper(pipeline: pipeline(), columns: ["pid", "mail"]) }
    }

    @Test func staticProblemsNameFields() {
        var p = pipeline()
        p.mapping["favourite_colour"] = "x"
        p.filters = [.init(column: "land", op: .in, value: nil)]
        p.validation.maxInvalidRatio = 2
        let problems = p.staticProblems()
        #expect(problems.contains { $0.hasPrefix("mapping.favourite_colour") })
        #expect(problems.contains { $0.hasPrefix("filters[0].value") })
        #expect(problems.contains { $0.hasPrefix("validation.max_invalid_ratio") })
        #expect(pipeline().staticProblems().isEmpty)
    }

    @Test func countsBelowOneAndNegativeLookbacksAreProblemsOfTheirFields() {
        var p = pipeline()
        p.watermark = .init(column: "updated", lookbackSeconds: -5, pageSize: 100)
        p.sinks = [.init(type: .ndjson, directory: "out", segmentMaxBytes: 0),
                   .init(type: .webhook, url: "https://example.com/hook", batchSize: 0)]
        let problems = p.staticProblems()
        #expect(problems.contains("watermark.lookback_seconds: must be 0 or more"), "\(problems)")
        #expect(problems.contains("sinks[0].segment_max_bytes: must be at least 1"), "\(problems)")
        #expect(problems.contains("sinks[1].batch_size: must be at least 1"), "\(problems)")
    }

    @Test func aStartThatIsNoVersionOrTimestampIsAProblemOfItsField() {
        for (start, problem) in [(Pipeline.Start.version(-1), "start: -1 is not a version"),
                                 (.timestamp("banana"), "start: 'banana' is not first, latest, a version or an ISO timestamp")] {
            var p = pipeline()
            p.start = start
            #expect(p.staticProblems().contains { $0.hasPrefix(problem) }, "\(p.staticProblems())")
        }
        for start in [Pipeline.Start.version(0), .version(12), .timestamp("2026-03-01T00:00:00Z"), .first, .latest] {
            var p = pipeline()
            p.start = start
            #expect(p.staticProblems().isEmpty, "\(start)")
        }
    }
}
