package cli

import "testing"

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		bad  bool
	}{
		{in: "0", want: 0},
		{in: "1048576", want: 1 << 20},
		{in: "4MiB", want: 4 << 20},
		{in: "1GiB", want: 1 << 30},
		{in: "512kib", want: 512 << 10},
		{in: " 2 TiB ", want: 2 << 40},
		{in: "10MB", want: 10_000_000},
		{in: "1gb", want: 1_000_000_000},
		{in: "100B", want: 100},
		{in: "", bad: true},
		{in: "MiB", bad: true},
		{in: "-1", bad: true},
		{in: "1.5GiB", bad: true},
		{in: "4 MiBs", bad: true},
		{in: "9223372036854775807KiB", bad: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseSize(tc.in)
			if tc.bad {
				if err == nil {
					t.Fatalf("ParseSize(%q) = %d, want an error", tc.in, got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseSize(%q) = %d, %v, want %d", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestFormatSize(t *testing.T) {
	for _, tc := range []struct {
		n    int64
		want string
	}{
		{0, "0"}, {1000, "1000"}, {1536 << 10, "1536KiB"}, {4 << 20, "4MiB"}, {64 << 30, "64GiB"}, {2 << 40, "2TiB"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			got := FormatSize(tc.n)
			if got != tc.want {
				t.Fatalf("FormatSize(%d) = %q, want %q", tc.n, got, tc.want)
			}
			if back, err := ParseSize(got); err != nil || back != tc.n {
				t.Fatalf("ParseSize(%q) = %d, %v, want %d", got, back, err, tc.n)
			}
		})
	}
}

func TestHumanSize(t *testing.T) {
	for _, tc := range []struct {
		n    int64
		want string
	}{
		{0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {1536 << 10, "1.5 MiB"}, {10 << 20, "10.0 MiB"}, {3 << 30, "3.0 GiB"},
		{5 << 50, "5.0 PiB"}, {5 << 60, "5120.0 PiB"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			if got := HumanSize(tc.n); got != tc.want {
				t.Fatalf("HumanSize(%d) = %q, want %q", tc.n, got, tc.want)
			}
		})
	}
}
