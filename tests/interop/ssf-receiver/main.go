// An SSF receiver built on SGNL's caep.dev secevent library (github.com/sgnl-ai/caep.dev/secevent),
// used by tests/integration/test_ssf_interop.py to check that Sessionwarden's SETs are accepted
// by an implementation written elsewhere. The library verifies each token: the RS256/ES256
// signature against the transmitter's JWKS (fetched from -jwks), the issuer, the audience,
// exactly one event, the CAEP event's own schema, and the sub_id subject.
//
//	ssf-receiver -mode push -listen 127.0.0.1:0 -jwks URL -iss ISS -aud AUD
//	    an RFC 8935 push endpoint: prints "listening ADDR", then one JSON line per SET
//	    accepted (202) or refused (400 with an RFC 8935 error body).
//	ssf-receiver -mode poll -poll URL -token T -jwks URL -iss ISS -aud AUD -want N
//	    RFC 8936: polls until N SETs are accepted, acknowledging them (refused ones are
//	    reported in setErrs), printing one JSON line per SET.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/sgnl-ai/caep.dev/secevent/pkg/parser"
	"github.com/sgnl-ai/caep.dev/secevent/pkg/schemes/caep"
)

type line struct {
	Accepted       bool   `json:"accepted"`
	Error          string `json:"error,omitempty"`
	Jti            string `json:"jti,omitempty"`
	EventType      string `json:"event_type,omitempty"`
	EventTimestamp int64  `json:"event_timestamp,omitempty"`
	Initiating     string `json:"initiating_entity,omitempty"`
	SubjectFormat  string `json:"subject_format,omitempty"`
	Subject        string `json:"subject,omitempty"`
}

func check(p *parser.Parser, token string) line {
	set, err := p.ParseSecEvent(token)
	if err != nil {
		return line{Accepted: false, Error: err.Error()}
	}
	out := line{Accepted: true, Jti: set.ID, EventType: string(set.Event.Type())}
	if set.Subject != nil {
		out.SubjectFormat = string(set.Subject.Format())
		if raw, err := set.Subject.MarshalJSON(); err == nil {
			out.Subject = string(raw)
		}
	}
	if revoked, ok := set.Event.(*caep.SessionRevokedEvent); ok {
		if ts, ok := revoked.GetEventTimestamp(); ok {
			out.EventTimestamp = ts
		}
		if who, ok := revoked.GetInitiatingEntity(); ok {
			out.Initiating = who.String()
		}
	}
	return out
}

func emit(l line) {
	raw, _ := json.Marshal(l)
	fmt.Println(string(raw))
}

func main() {
	mode := flag.String("mode", "push", "push or poll")
	listen := flag.String("listen", "127.0.0.1:0", "push: address to listen on")
	jwks := flag.String("jwks", "", "the transmitter's jwks_uri")
	iss := flag.String("iss", "", "the expected issuer")
	aud := flag.String("aud", "", "the expected audience")
	pollURL := flag.String("poll", "", "poll: the stream's poll endpoint")
	token := flag.String("token", "", "poll: the bearer token")
	want := flag.Int("want", 1, "poll: SETs to accept before exiting")
	flag.Parse()
	p := parser.NewParser(
		parser.WithJWKSURL(*jwks),
		parser.WithExpectedIssuer(*iss),
		parser.WithExpectedAudience(*aud),
	)
	if *mode == "poll" {
		os.Exit(poll(p, *pollURL, *token, *want))
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("listening %s\n", ln.Addr())
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 65536))
		result := check(p, string(body))
		emit(result)
		if !result.Accepted {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			json.NewEncoder(w).Encode(map[string]string{"err": "invalid_request", "description": result.Error})
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
	fmt.Fprintln(os.Stderr, http.Serve(ln, nil))
	os.Exit(1)
}

func poll(p *parser.Parser, url, token string, want int) int {
	client := &http.Client{Timeout: 60 * time.Second}
	acks := []string{}
	errs := map[string]map[string]string{}
	accepted := 0
	deadline := time.Now().Add(90 * time.Second)
	for accepted < want || len(acks) > 0 || len(errs) > 0 {
		if time.Now().After(deadline) {
			return 1
		}
		req := map[string]any{"maxEvents": 100, "returnImmediately": accepted >= want, "ack": acks, "setErrs": errs}
		raw, _ := json.Marshal(req)
		acks, errs = []string{}, map[string]map[string]string{}
		httpReq, _ := http.NewRequest("POST", url, bytes.NewReader(raw))
		httpReq.Header.Set("Authorization", "Bearer "+token)
		httpReq.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(httpReq)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			time.Sleep(time.Second)
			continue
		}
		var answer struct {
			Sets          map[string]string `json:"sets"`
			MoreAvailable bool              `json:"moreAvailable"`
		}
		err = json.NewDecoder(resp.Body).Decode(&answer)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			fmt.Fprintf(os.Stderr, "poll answered %d: %v\n", resp.StatusCode, err)
			return 1
		}
		for jti, set := range answer.Sets {
			result := check(p, set)
			emit(result)
			if result.Accepted {
				accepted++
				acks = append(acks, jti)
			} else {
				errs[jti] = map[string]string{"err": "invalid_request", "description": result.Error}
			}
		}
	}
	return 0
}
