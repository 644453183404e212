package cli

import (
	"bufio"
	"io"
	"strings"
)

// maxLine bounds what FirstLine reads.
const maxLine = 4096

// FirstLine reads the first line of r, at most 4 KiB, without its line
// break; "" when r is empty. It reads ahead of the line break, so r is
// meant to hold the line alone, such as a password on stdin.
func FirstLine(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, maxLine)).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}
