import KLCore
import Testing

@Suite struct JSONTests {
    @Test func roundTrip_keepsKeyOrderAndNumberText() throws {
        let text = #"{"z":1,"a":{"b":[true,false,null,-1.50e3,"x\"y"]},"big":12345678901234567890}"#
        let json = try JSON.parse(text)
        #expect(json.serialized() == text)
        #expect(json[path: "a", "b"]?[3]?.doubleValue == -1500)
        #expect(json["big"]?.serialized() == "12345678901234567890")
    }

    @Test func unicodeEscapes_andSurrogatePairs() throws {
        let json = try JSON.parse(#"["\u00e9\ud83d\ude00\n\t\/"]"#)
        #expect(json[0]?.stringValue == "é😀\n\t/")
        #expect(JSON.quoted("a\u{1}\"\\") == #""a\u0001\"\\""#)
    }

    @Test(arguments: [
        ("", "empty input"), ("{", "unexpected end"), ("[1,]", "unexpected character"), ("01", "leading zero"),
        (#"{"a" 1}"#, "expected ':'"), (#""\ud800""#, "unpaired surrogate"), ("tru", "unexpected end"),
        ("[1] x", "after the JSON value"), ("\"a\u{1}\"", "control character"),
    ])
    func invalidInput_isAnErrorWithPlace(text: String, fragment: String) {
        #expect {
            _ = try JSON.parse(text)
        } throws: { error in
            guard let e = error as? JSONParseError else { return false }
            return e.message.contains(fragment) && e.description.contains("line 1")
        }
    }

    @Test func deepNesting_isRejectedNotACrash() {
        let text = String(repeating: "[", count: 100_000)
        #expect(throws: JSONParseError.self) { try JSON.parse(text) }
    }

    @Test func pathSetter_createsIntermediateObjects_andNilRemoves() {
        var json: JSON = ["metadata": ["name": "x"]]
        json[path: "metadata", "annotations", "k"] = "v"
        #expect(json.serialized() == #"{"metadata":{"name":"x","annotations":{"k":"v"}}}"#)
        json[path: "metadata", "name"] = nil
        #expect(json.serialized() == #"{"metadata":{"annotations":{"k":"v"}}}"#)
    }

    @Test func objectEquality_ignoresKeyOrder() throws {
        #expect(try JSON.parse(#"{"a":1,"b":2}"#) == JSON.parse(#"{"b":2,"a":1}"#))
        #expect(try JSON.parse(#"{"a":1}"#) != JSON.parse(#"{"a":2}"#))
    }
}

@Suite struct JSONFastPathTests {
    @Test func writer_escapesEveryCharacterJSONRequires() throws {
        let s = "plain \" \\ \n \r \t \u{08} \u{0C} \u{01} \u{1F} \u{7F} \u{2028} \u{2029} é€😀 \u{2027}"
        let quoted = JSON.quoted(s)
        #expect(quoted == #""plain \" \\ \n \r \t \b \f \u0001 \u001f \u007f \u2028 \u2029 é€😀 \#u{2027}""#)
        #expect(try JSON.parse(quoted).stringValue == s)
        #expect(JSON.quoted("ascii only") == #""ascii only""#)
        var out = "x"
        JSON.writeString("a\"b", to: &out)
        #expect(out == #"x"a\"b""#)
    }

    @Test func parser_stringsWithAndWithoutEscapes_andInvalidUTF8() throws {
        #expect(try JSON.parse(#"["abc","é😀","a\nb","\u00e9x"]"#) == ["abc", "é😀", "a\nb", "éx"])
        #expect(throws: JSONParseError.self) { try JSON.parse(bytes: [0x22, 0xFF, 0x22]) }
        #expect(throws: JSONParseError.self) { try JSON.parse(bytes: [0x22, 0x61, 0x01, 0x22]) }
        #expect(throws: JSONParseError.self) { try JSON.parse(#""abc"#) }
        #expect(try JSON.parse(bytes: Array(#"{"k":"v"}"#.utf8)[...])["k"] == "v")
    }

    @Test func largeObjects_keepOrder_lookup_remove_andEquality() throws {
        let n = 40
        let text = "{" + (0..<n).map { #""k\#($0)":\#($0)"# }.joined(separator: ",") + "}"
        var json = try JSON.parse(text)
        #expect(json.serialized() == text)
        #expect(json.objectValue?.keys == (0..<n).map { "k\($0)" })
        for i in 0..<n { #expect(json["k\(i)"]?.intValue == i) }
        json["k5"] = nil
        json["k6"] = "six"
        json["new"] = true
        #expect(json["k5"] == nil && json["k6"] == "six" && json["k7"]?.intValue == 7 && json["new"] == true)
        #expect(json.objectValue?.count == n)
        let reversed = JSON.object(JSONObject(json.objectValue!.map { ($0.key, $0.value) }.reversed()))
        #expect(reversed == json)
        #expect(reversed.hashValue == json.hashValue)
        var shrunk = json.objectValue!
        for k in shrunk.keys.dropFirst(3) { shrunk[k] = nil }
        #expect(shrunk.keys == ["k0", "k1", "k2"] && shrunk["k2"] == 2 && shrunk["k3"] == nil)
        #expect(JSON.object(shrunk) != json)
        // A duplicate key keeps its first position and the last value.
        #expect(try JSON.parse(#"{"a":1,"b":2,"a":3}"#).serialized() == #"{"a":3,"b":2}"#)
    }

    @Test func prettyPrinted_indentsTwoSpaces() throws {
        let json = try JSON.parse(#"{"a":[1,{}],"b":{"c":null}}"#)
        #expect(json.prettyPrinted() == "{\n  \"a\": [\n    1,\n    {}\n  ],\n  \"b\": {\n    \"c\": null\n  }\n}")
    }
}

@Suite struct DurationTextTests {
    @Test(arguments: [("500ms", 500_000_000), ("15s", 15_000_000_000), ("2m", 120_000_000_000), ("1m30s", 90_000_000_000),
                      ("1.5s", 1_500_000_000), ("1h", 3_600_000_000_000)] as [(String, Int64)])
    func parses(text: String, nanos: Int64) throws {
        #expect(try DurationText.parse(text).nanoseconds == nanos)
    }

    @Test(arguments: ["", "15", "s", "-1s", "1x", "1.2.3s", "ten seconds"])
    func rejects(text: String) {
        #expect(throws: DurationText.ParseError.self) { try DurationText.parse(text) }
    }

    @Test func formats_shortest() {
        #expect(DurationText.format(.seconds(15)) == "15s")
        #expect(DurationText.format(.milliseconds(500)) == "500ms")
        #expect(DurationText.format(.seconds(90)) == "1m30s")
        #expect(DurationText.format(.milliseconds(1500)) == "1.5s")
        #expect(DurationText.format(.zero) == "0s")
    }
}

@Suite struct RFC3339Tests {
    @Test func formats_secondsMicrosAndMillis() {
        let t = WallTime(seconds: 1_795_859_505, nanoseconds: 123_456_789)  // 2026-11-28T09:51:45Z
        #expect(RFC3339.format(t) == "2026-11-28T09:51:45Z")
        #expect(RFC3339.formatMicro(t) == "2026-11-28T09:51:45.123456Z")
        #expect(RFC3339.formatMillis(t) == "2026-11-28T09:51:45.123Z")
        #expect(RFC3339.format(WallTime(seconds: 0)) == "1970-01-01T00:00:00Z")
        #expect(RFC3339.format(WallTime(seconds: 951_782_400)) == "2000-02-29T00:00:00Z")
    }

    @Test func formats_everyFractionWidth_andParsesItBack() {
        let t = WallTime(seconds: 1_795_859_505, nanoseconds: 7_050_009)
        let expected = ["", ".0", ".00", ".007", ".0070", ".00705", ".007050", ".0070500", ".00705000", ".007050009", ".007050009"]
        for (digits, fraction) in expected.enumerated() {
            #expect(RFC3339.format(t, fractionDigits: digits) == "2026-11-28T09:51:45\(fraction)Z")
        }
        #expect(RFC3339.parse(RFC3339.format(t, fractionDigits: 9)) == t)
        #expect(RFC3339.format(WallTime(seconds: 253_402_300_799)) == "9999-12-31T23:59:59Z")
        #expect(RFC3339.format(WallTime(seconds: 253_402_300_800)) == "10000-01-01T00:00:00Z")
    }

    @Test(arguments: [
        ("2026-11-28T09:51:45Z", 1_795_859_505, 0), ("2026-11-28T09:51:45.5Z", 1_795_859_505, 500_000_000),
        ("2026-11-28T10:51:45+01:00", 1_795_859_505, 0), ("2026-11-28 09:51:45.706271", 1_795_859_505, 706_271_000),
        ("2026-11-28T09:51:45.123456789123Z", 1_795_859_505, 123_456_789), ("2026-11-28T04:51:45-0500", 1_795_859_505, 0),
    ] as [(String, Int64, Int32)])
    func parsesLeniently(text: String, seconds: Int64, nanos: Int32) {
        #expect(RFC3339.parse(text) == WallTime(seconds: seconds, nanoseconds: nanos))
    }

    @Test(arguments: ["", "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z", "2026-11-28T25:00:00Z", "yesterday", "2026-11-28T09:51:45Q"])
    func rejectsGarbage(text: String) {
        #expect(RFC3339.parse(text) == nil)
    }

    @Test func civilRoundTrip_overFourCenturies() {
        var day = CivilTime.daysFromCivil(year: 1900, month: 1, day: 1)
        let end = CivilTime.daysFromCivil(year: 2300, month: 1, day: 1)
        while day < end {
            let (y, m, d) = CivilTime.civilFromDays(day)
            #expect(CivilTime.daysFromCivil(year: y, month: m, day: d) == day)
            day += 37
        }
        #expect(CivilTime.weekday(daysSinceEpoch: 0) == 4)  // 1970-01-01 was a Thursday
    }
}
