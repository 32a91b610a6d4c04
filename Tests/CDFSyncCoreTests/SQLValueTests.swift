import CDFSyncCore
import Testing

private func column(_ typeName: String, _ typeText: String? = nil, precision: Int? = nil, scale: Int? = nil)
    -> ColumnInfo
{
    ColumnInfo(name: "c", typeText: typeText ?? typeName, typeName: SQLTypeName(rawValue: typeName), position: 0,
               typePrecision: precision, typeScale: scale)
}

private func value(_ text: String?, _ c: ColumnInfo, _ options: SQLValue.DecodingOptions = .init()) throws -> SQLValue {
    try SQLValue.decode(text: text, column: c, options: options)
}

private func micros(_ y: Int, _ mo: Int, _ d: Int, _ h: Int = 0, _ mi: Int = 0, _ s: Int = 0, _ us: Int64 = 0) -> Int64 {
    // Independent reference: count days by walking years and months.
    var days: Int64 = 0
    if y >= 1970 {
        for year in 1970..<y { days += (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 366 : 365 }
    } else {
        for year in y..<1970 { days -= (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 366 : 365 }
    }
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
    let lengths = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
    for m in 0..<(mo - 1) { days += Int64(lengths[m]) }
    days += Int64(d - 1)
    return (days * 86_400 + Int64(h * 3600 + mi * 60 + s)) * 1_000_000 + us
}

@Suite("SQLValue conversion")
struct SQLValueTests {
    @Test func nullForEveryType() throws {
        for t in ["INT", "STRING", "DECIMAL", "TIMESTAMP", "BINARY", "NULL", "ARRAY", "SOMETHING_NEW"] {
            #expect(try value(nil, column(t)) == .null)
        }
        #expect(SQLValue.null.isNull && !SQLValue.int(1).isNull)
    }

    @Test func strings() throws {
        #expect(try value("  spaced  ", column("STRING")) == .string("  spaced  "))
        #expect(try value("", column("STRING")) == .string(""))
        #expect(try value("こんにちは", column("CHAR", "CHAR(5)")) == .string("こんにちは"))
        #expect(try value("x", column("", "VARCHAR(10)")) == .string("x"))
    }

    @Test func integersWithRanges() throws {
        #expect(try value("1", column("INT")) == .int(1))
        #expect(try value("-2147483648", column("INT")) == .int(-2_147_483_648))
        #expect(try value("9223372036854775807", column("LONG", "BIGINT")) == .int(.max))
        #expect(try value("-9223372036854775808", column("LONG", "BIGINT")) == .int(.min))
        #expect(try value("127", column("BYTE", "TINYINT")) == .int(127))
        #expect(throws: SQLValueError.self) { try value("128", column("BYTE", "TINYINT")) }
        #expect(throws: SQLValueError.self) { try value("32768", column("SHORT", "SMALLINT")) }
        #expect(throws: SQLValueError.self) { try value("2147483648", column("INT")) }
        #expect(throws: SQLValueError.self) { try value("9223372036854775808", column("LONG")) }
        #expect(throws: SQLValueError.self) { try value("1.0", column("INT")) }
        #expect(throws: SQLValueError.self) { try value("", column("INT")) }
        #expect(throws: SQLValueError.self) { try value(" 1", column("INT")) }
    }

    @Test func errorsNameColumnTypeAndValue() {
        let c = ColumnInfo(name: "amount", typeText: "DECIMAL(10,2)", typeName: .decimal, position: 3,
                           typePrecision: 10, typeScale: 2)
        do {
            _ = try SQLValue.decode(text: "12,50", column: c)
            Issue.record("expected an error")
        } catch let e as SQLValueError {
            #expect(e.column == "amount" && e.typeText == "DECIMAL(10,2)" && e.text == "12,50")
            #expect(e.description == #"column "amount" (DECIMAL(10,2)): cannot convert "12,50": not a decimal number"#)
        } catch {
            Issue.record("wrong error \(error)")
        }
    }

    @Test func decimalsAreExact() throws {
        let c = column("DECIMAL", "DECIMAL(38,10)", precision: 38, scale: 10)
        let v = try value("1234567890123456789012345678.0123456789", c)
        guard case .decimal(let d) = v else { Issue.record("not decimal"); return }
        #expect(d.scale == 10)
        #expect(d.significand == Int128("12345678901234567890123456780123456789")!)
        #expect(d.description == "1234567890123456789012345678.0123456789")
        #expect(try value("0.0000", column("DECIMAL", "DECIMAL(4,4)", precision: 4, scale: 4)) == .decimal(ExactDecimal(significand: 0, scale: 4)))
        #expect(ExactDecimal("-0.05")?.description == "-0.05")
        #expect(ExactDecimal("1.50") == ExactDecimal("1.5"))
        #expect(ExactDecimal("1.50")?.hashValue == ExactDecimal("1.5")?.hashValue)
        #expect(ExactDecimal("1.5e2")?.description == "150")
        #expect(ExactDecimal("1.5E-2")?.description == "0.015")
        #expect(ExactDecimal("-3")! < ExactDecimal("2.99")!)
        #expect(ExactDecimal("2.5")! < ExactDecimal("2.51")!)
        #expect(ExactDecimal("0.1")!.rescaled(to: 3)?.description == "0.100")
        #expect(ExactDecimal("0.125")!.rescaled(to: 2) == nil)
        for bad in ["", "-", ".", "1.2.3", "1e", "abc", "1,0", "NaN", "99999999999999999999999999999999999999999"] {
            #expect(ExactDecimal(bad) == nil, "\(bad)")
        }
        #expect(throws: SQLValueError.self) { try value("123456.78", column("DECIMAL", "DECIMAL(5,2)", precision: 5, scale: 2)) }
        #expect(try value("123.45", column("DECIMAL", "DECIMAL(5,2)", precision: 5, scale: 2)) == .decimal(ExactDecimal("123.45")!))
    }

    @Test func doubles() throws {
        let c = column("DOUBLE")
        #expect(try value("1.236", c) == .double(1.236))
        #expect(try value("-1.5E10", c) == .double(-1.5e10))
        #expect(try value("Infinity", c) == .double(.infinity))
        #expect(try value("-Infinity", column("FLOAT")) == .double(-.infinity))
        guard case .double(let nan) = try value("NaN", c) else { Issue.record("not double"); return }
        #expect(nan.isNaN)
        #expect(throws: SQLValueError.self) { try value("0x1p3", c) }
        #expect(throws: SQLValueError.self) { try value("one", c) }
        #expect(throws: SQLValueError.self) { try value("", c) }
    }

    @Test func booleans() throws {
        #expect(try value("true", column("BOOLEAN")) == .bool(true))
        #expect(try value("false", column("BOOLEAN")) == .bool(false))
        #expect(try value("TRUE", column("BOOLEAN")) == .bool(true))
        #expect(throws: SQLValueError.self) { try value("1", column("BOOLEAN")) }
        #expect(throws: SQLValueError.self) { try value("yes", column("BOOLEAN")) }
    }

    @Test func dates() throws {
        #expect(try value("2023-01-15", column("DATE")) == .date(year: 2023, month: 1, day: 15))
        #expect(try value("2024-02-29", column("DATE")) == .date(year: 2024, month: 2, day: 29))
        for bad in ["2023-02-29", "2023-13-01", "2023-1-15", "2023-01-15T00:00:00", "20230115", "2023-04-31"] {
            #expect(throws: SQLValueError.self, "\(bad)") { try value(bad, column("DATE")) }
        }
    }

    @Test func timestampsWithOffsets() throws {
        let c = column("TIMESTAMP")
        #expect(try value("2021-01-01T10:00:00.000-08:00", c)
            == .timestamp(epochMicros: micros(2021, 1, 1, 18), offsetSeconds: -28_800))
        #expect(try value("2021-06-15T12:34:56.789-07:00", c)
            == .timestamp(epochMicros: micros(2021, 6, 15, 19, 34, 56, 789_000), offsetSeconds: -25_200))
        #expect(try value("2024-11-08T15:20:17.922Z", c)
            == .timestamp(epochMicros: micros(2024, 11, 8, 15, 20, 17, 922_000), offsetSeconds: 0))
        #expect(try value("2024-11-08T15:20:17Z", c)
            == .timestamp(epochMicros: micros(2024, 11, 8, 15, 20, 17), offsetSeconds: 0))
        #expect(try value("2024-11-08 15:20:17.123456789+05:30", c)
            == .timestamp(epochMicros: micros(2024, 11, 8, 9, 50, 17, 123_456), offsetSeconds: 19_800))
        #expect(try value("2024-11-08T15:20:17.1+0100", c)
            == .timestamp(epochMicros: micros(2024, 11, 8, 14, 20, 17, 100_000), offsetSeconds: 3600))
        #expect(try value("2024-11-08T15:20:17.123456", c)
            == .timestamp(epochMicros: micros(2024, 11, 8, 15, 20, 17, 123_456), offsetSeconds: nil))
        #expect(try value("1969-12-31T23:59:59.999999Z", c) == .timestamp(epochMicros: -1, offsetSeconds: 0))
        #expect(try value("1900-03-01T00:00:00Z", c) == .timestamp(epochMicros: micros(1900, 3, 1), offsetSeconds: 0))
        for bad in ["2021-01-01T25:00:00Z", "2021-01-01T10:00:00.Z", "2021-01-01T10:00:00.1234567890Z",
                    "2021-01-01T10:00:00 PST", "2021-01-01T10:00:00-8", "2021-01-01T10", "not a time"] {
            #expect(throws: SQLValueError.self, "\(bad)") { try value(bad, c) }
        }
    }

    @Test func timestampNTZ() throws {
        let c = column("TIMESTAMP_NTZ")
        #expect(try value("2023-05-01T08:30:00.5", c) == .timestampNTZ(epochMicros: micros(2023, 5, 1, 8, 30, 0, 500_000)))
        #expect(try value("2023-05-01 08:30:00", c) == .timestampNTZ(epochMicros: micros(2023, 5, 1, 8, 30)))
        #expect(throws: SQLValueError.self) { try value("2023-05-01T08:30:00Z", c) }
    }

    @Test func binaryBase64AndHex() throws {
        let c = column("BINARY")
        #expect(try value("AQID", c) == .binary([1, 2, 3]))
        #expect(try value("AQIDBA==", c) == .binary([1, 2, 3, 4]))
        #expect(try value("AQIDBAU=", c) == .binary([1, 2, 3, 4, 5]))
        #expect(try value("", c) == .binary([]))
        #expect(try value("010203", c) == .binary([1, 2, 3]))  // not valid base64 length → hex
        #expect(try value("0x0A0b", c) == .binary([10, 11]))
        #expect(try value("AQID", c, .init(binaryEncoding: .base64)) == .binary([1, 2, 3]))
        #expect(try value("01020304", c, .init(binaryEncoding: .hex)) == .binary([1, 2, 3, 4]))
        #expect(throws: SQLValueError.self) { try value("01020", c) }
        #expect(throws: SQLValueError.self) { try value("AQID", c, .init(binaryEncoding: .hex)) }
        #expect(throws: SQLValueError.self) { try value("010203", c, .init(binaryEncoding: .base64)) }
        #expect(throws: SQLValueError.self) { try value("A=B=", c) }
    }

    @Test func nestedTypesKeepJSONText() throws {
        #expect(try value("[1,2,3]", column("ARRAY", "ARRAY<INT>")) == .json("[1,2,3]"))
        #expect(try value(#"{"k":"v"}"#, column("MAP", "MAP<STRING, STRING>")) == .json(#"{"k":"v"}"#))
        #expect(try value(#"{"street":"a","zip":1}"#, column("STRUCT", "STRUCT<street: STRING, zip: INT>")) == .json(#"{"street":"a","zip":1}"#))
        #expect(try value(#"{"a":1}"#, column("VARIANT")) == .json(#"{"a":1}"#))
    }

    @Test func otherTypesKeepText() throws {
        #expect(try value("1 02:03:04.000000000", column("INTERVAL", "INTERVAL DAY TO SECOND")) == .other(typeName: "INTERVAL", text: "1 02:03:04.000000000"))
        #expect(try value("x", column("GEOGRAPHY")) == .other(typeName: "GEOGRAPHY", text: "x"))
        // Unknown type_name falls back to type_text.
        #expect(try value("7", ColumnInfo(name: "n", typeText: "BIGINT", typeName: SQLTypeName(rawValue: "WEIRD"), position: 0)) == .int(7))
    }

    @Test func rowViewValueConversion() throws {
        var decoder = ResultStreamDecoder(layout: .bareArray, expectedColumnCount: 3)
        let columns = [column("LONG", "BIGINT"), column("DATE"), column("STRING")]
        var got: [SQLValue] = []
        try Array(#"[["42","2024-02-29",null]]"#.utf8).withUnsafeBytes { b in
            try decoder.feed(b) { row in got = try (0..<3).map { try row.value($0, column: columns[$0]) } }
        }
        #expect(got == [.int(42), .date(year: 2024, month: 2, day: 29), .null])
    }
}
