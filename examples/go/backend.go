// A webtalk backend in Go, standard library only: create a user, whisper to it, shout to everyone.
// Run:  WEBTALK_PRIVATE=127.0.0.1:12344 go run backend.go
package main

import (
	"bufio"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"strconv"
	"strings"
)

// Webtalk is one control connection. Each frame is 5 digits (the payload's length in bytes), then the payload.
type Webtalk struct {
	conn    net.Conn
	replies *bufio.Reader
}

// Call sends one command and returns the data after "[ok] ", or an error carrying the [error] reply.
func (w *Webtalk) Call(command string) (string, error) {
	if _, err := fmt.Fprintf(w.conn, "%05d%s", len(command), command); err != nil {
		return "", err
	}
	header := make([]byte, 5)
	if _, err := io.ReadFull(w.replies, header); err != nil {
		return "", err
	}
	size, err := strconv.Atoi(string(header))
	if err != nil {
		return "", fmt.Errorf("bad frame header %q", header)
	}
	reply := make([]byte, size)
	if _, err := io.ReadFull(w.replies, reply); err != nil {
		return "", err
	}
	if !strings.HasPrefix(string(reply), "[ok] ") {
		return "", fmt.Errorf("webtalk: %s -> %s", command, reply)
	}
	return string(reply[len("[ok] "):]), nil
}

// Close says goodbye and closes the connection.
func (w *Webtalk) Close() error {
	w.conn.Write([]byte("00000"))
	return w.conn.Close()
}

// controlAddress reads WEBTALK_PRIVATE as the server does (HOST:PORT or :PORT), else 127.0.0.1:12344.
func controlAddress() string {
	address := os.Getenv("WEBTALK_PRIVATE")
	if address == "" {
		address = "127.0.0.1:12344"
	}
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		log.Fatalf("WEBTALK_PRIVATE=%q: %v", address, err)
	}
	if host == "" || host == "0.0.0.0" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

func main() {
	conn, err := net.Dial("tcp", controlAddress())
	if err != nil {
		log.Fatal(err)
	}
	wt := &Webtalk{conn: conn, replies: bufio.NewReader(conn)}
	defer wt.Close()

	must := func(reply string, err error) string {
		if err != nil {
			log.Fatal(err)
		}
		return reply
	}
	token := must(wt.Call("[newuser]")) // ID!SALT: hand it to the user's page, which logs in with it
	user := strings.SplitN(token, "!", 2)[0]
	fmt.Printf("user %s: the page logs in with token %s\n", user, token)
	fmt.Printf("whisper to %s: %s\n", user, must(wt.Call(fmt.Sprintf("[whisper] %s!Hello, user %s (from Go)", user, user))))
	fmt.Printf("shout to channel 1: %s\n", must(wt.Call("[shout] 1!Hello, everyone (from Go)")))
}
