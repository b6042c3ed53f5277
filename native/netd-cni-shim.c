/*
 * netd-cni-shim: the netd CNI plugin as a small native executable (libc only), for runtimes where the
 * plugin's start-up matters (node alone takes ~75 ms to start; this takes ~1 ms). It is the same program
 * as src/cni/plugin.ts, which stays the reference: read the CNI_* environment and the network
 * configuration on stdin, POST them as {"env": {...}, "stdin": "..."} to the daemon's /netd/v1/cni on its
 * unix socket, print the reply's body to stdout, exit 0 (2xx) or 1. Answered here without the daemon:
 * VERSION, and the errors 4 (no CNI_COMMAND), 6 (stdin not UTF-8 JSON), 7 (bad `host`, stdin or escaped request > 1 MiB),
 * 50 (daemon unreachable), 11 (busy, no answer within NETD_CNI_TIMEOUT_MS or 120 s, broken reply).
 * Its output is byte for byte that of the JS plugin for the same input (test/integration/cni-plugin.test.ts).
 *
 * Built by binding.gyp (target netd-cni-shim) into build/Release/netd-cni-shim.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>

#define MAX_STDIN (1u << 20)
#define MAX_BODY (1u << 20) /* the daemon refuses request bodies over 1 MiB: the escaped config must fit */
#define MAX_TIMEOUT_MS 2147483647LL /* node's setTimeout limit; the JS plugin clamps the same */
#define MAX_REPLY (16u << 20)
#define DEFAULT_VERSION "1.1.0"
#define DEFAULT_HOST "unix:///run/netd/netd.sock"
#define SUPPORTED "[\"0.3.0\",\"0.3.1\",\"0.4.0\",\"1.0.0\",\"1.1.0\"]"

/* ---- growable byte buffer ---- */

struct buf {
  char *p;
  size_t n, cap;
};

static void die_oom(void) {
  static const char m[] = "netd-cni-shim: out of memory\n";
  if (write(2, m, sizeof m - 1) < 0) _exit(1);
  _exit(1);
}

static void buf_add(struct buf *b, const void *p, size_t n) {
  if (b->n + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + n + 1) cap *= 2;
    char *q = realloc(b->p, cap);
    if (!q) die_oom();
    b->p = q;
    b->cap = cap;
  }
  memcpy(b->p + b->n, p, n);
  b->n += n;
  b->p[b->n] = 0;
}

static void buf_str(struct buf *b, const char *s) { buf_add(b, s, strlen(s)); }

static void buf_fmt(struct buf *b, const char *fmt, ...) {
  char tmp[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n > 0) buf_add(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/*
 * Appends `s` as a JSON string, escaped as JSON.stringify escapes: \" \\ \b \f \n \r \t, other controls
 * as \u00xx, everything else raw, except a lone surrogate (which decoding a \uD800 escape yields, kept as
 * its 3-byte WTF-8 form) which becomes \udxxx.
 */
static void buf_json_string(struct buf *b, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  buf_add(b, "\"", 1);
  size_t run = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    char esc[8];
    size_t elen = 0, skip = 0;
    if (c == '"' || c == '\\') {
      esc[0] = '\\', esc[1] = (char)c, elen = 2;
    } else if (c < 0x20) {
      const char *short_esc = c == '\b' ? "\\b" : c == '\f' ? "\\f" : c == '\n' ? "\\n" : c == '\r' ? "\\r" : c == '\t' ? "\\t" : NULL;
      if (short_esc) memcpy(esc, short_esc, 2), elen = 2;
      else memcpy(esc, "\\u00", 4), esc[4] = hex[c >> 4], esc[5] = hex[c & 15], elen = 6;
    } else if (c == 0xED && i + 2 < n && ((unsigned char)s[i + 1] & 0xE0) == 0xA0) {
      unsigned cp = 0xD000u | (((unsigned char)s[i + 1] & 0x3Fu) << 6) | ((unsigned char)s[i + 2] & 0x3Fu);
      memcpy(esc, "\\u", 2);
      for (int k = 0; k < 4; k++) esc[2 + k] = hex[(cp >> (12 - 4 * k)) & 15];
      elen = 6, skip = 2;
    }
    if (elen == 0) {
      run++;
      continue;
    }
    buf_add(b, s + i - run, run);
    run = 0;
    buf_add(b, esc, elen);
    i += skip;
  }
  buf_add(b, s + n - run, run);
  buf_add(b, "\"", 1);
}

/* ---- UTF-8 and JSON ---- */

/* Strict UTF-8 (RFC 3629: no overlongs, no surrogates, at most U+10FFFF), as node's buffer.isUtf8. */
static int valid_utf8(const unsigned char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t len;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else return 0;
    if (i + len > n) return 0;
    if (s[i + 1] < lo || s[i + 1] > hi) return 0;
    for (size_t k = 2; k < len; k++)
      if ((s[i + k] & 0xC0) != 0x80) return 0;
    i += len;
  }
  return 1;
}

static size_t skip_ws(const char *s, size_t n, size_t i) {
  while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) i++;
  return i;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static void put_utf8(struct buf *out, unsigned cp) {
  char u[4];
  size_t k;
  if (cp < 0x80) u[0] = (char)cp, k = 1;
  else if (cp < 0x800) u[0] = (char)(0xC0 | cp >> 6), u[1] = (char)(0x80 | (cp & 0x3F)), k = 2;
  else if (cp < 0x10000) u[0] = (char)(0xE0 | cp >> 12), u[1] = (char)(0x80 | ((cp >> 6) & 0x3F)), u[2] = (char)(0x80 | (cp & 0x3F)), k = 3;
  else u[0] = (char)(0xF0 | cp >> 18), u[1] = (char)(0x80 | ((cp >> 12) & 0x3F)), u[2] = (char)(0x80 | ((cp >> 6) & 0x3F)), u[3] = (char)(0x80 | (cp & 0x3F)), k = 4;
  buf_add(out, u, k);
}

/*
 * Scans the JSON string starting at s[*i] == '"'; on success *i is past its closing quote and, if `out`
 * is given, the decoded text is appended to it (lone surrogates as WTF-8). Returns 0, or -1 if invalid.
 */
static int scan_string(const char *s, size_t n, size_t *i, struct buf *out) {
  size_t k = *i + 1;
  while (k < n) {
    unsigned char c = (unsigned char)s[k];
    if (c == '"') {
      *i = k + 1;
      return 0;
    }
    if (c < 0x20) return -1;
    if (c != '\\') {
      if (out) buf_add(out, &s[k], 1);
      k++;
      continue;
    }
    if (k + 1 >= n) return -1;
    char e = s[k + 1];
    const char *simple = strchr("\"\\/bfnrt", e);
    if (e && simple) {
      static const char dec[] = "\"\\/\b\f\n\r\t";
      if (out) buf_add(out, &dec[simple - "\"\\/bfnrt"], 1);
      k += 2;
      continue;
    }
    if (e != 'u' || k + 6 > n) return -1;
    unsigned cp = 0;
    for (int d = 0; d < 4; d++) {
      int h = hexval(s[k + 2 + d]);
      if (h < 0) return -1;
      cp = cp << 4 | (unsigned)h;
    }
    k += 6;
    if (cp >= 0xD800 && cp <= 0xDBFF && k + 6 <= n && s[k] == '\\' && s[k + 1] == 'u') {
      unsigned lo = 0;
      int ok = 1;
      for (int d = 0; d < 4 && ok; d++) {
        int h = hexval(s[k + 2 + d]);
        if (h < 0) ok = 0;
        else lo = lo << 4 | (unsigned)h;
      }
      if (ok && lo >= 0xDC00 && lo <= 0xDFFF) {
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        k += 6;
      }
    }
    if (out) put_utf8(out, cp);
  }
  return -1;
}

static int scan_number(const char *s, size_t n, size_t *i) {
  size_t k = *i;
  if (k < n && s[k] == '-') k++;
  if (k < n && s[k] == '0') k++;
  else if (k < n && s[k] >= '1' && s[k] <= '9')
    while (k < n && s[k] >= '0' && s[k] <= '9') k++;
  else return -1;
  if (k < n && s[k] == '.') {
    k++;
    if (!(k < n && s[k] >= '0' && s[k] <= '9')) return -1;
    while (k < n && s[k] >= '0' && s[k] <= '9') k++;
  }
  if (k < n && (s[k] == 'e' || s[k] == 'E')) {
    k++;
    if (k < n && (s[k] == '+' || s[k] == '-')) k++;
    if (!(k < n && s[k] >= '0' && s[k] <= '9')) return -1;
    while (k < n && s[k] >= '0' && s[k] <= '9') k++;
  }
  *i = k;
  return 0;
}

/* A top-level member of interest: the value of the last occurrence of `key`, as a span of the input. */
struct member {
  const char *key;
  size_t start, end;
  int found;
};

/*
 * Validates the whole document as JSON.parse does (iteratively: any depth) and, when it is an object,
 * records the spans of the top-level members named in `want` (the last one wins, as in JSON.parse).
 * Returns 1 if it is a valid document whose top level is an object, 0 for another valid value, -1 if invalid.
 */
static int scan_json(const char *s, size_t n, struct member *want, int nwant) {
  char *stack = malloc(n + 1);
  if (!stack) die_oom();
  size_t depth = 0, i = skip_ws(s, n, 0), vstart = 0;
  int pending = -1, result = -1, top_object = i < n && s[i] == '{';
  struct buf key = {0};
value:
  i = skip_ws(s, n, i);
  if (i >= n) goto out;
  switch (s[i]) {
  case '{':
  case '[': {
    char open = s[i];
    stack[depth++] = open;
    i = skip_ws(s, n, i + 1);
    if (i < n && s[i] == (open == '{' ? '}' : ']')) {
      depth--, i++;
      goto after;
    }
    if (open == '{') goto member;
    goto value;
  }
  case '"':
    if (scan_string(s, n, &i, NULL) < 0) goto out;
    goto after;
  case 't':
    if (n - i < 4 || memcmp(s + i, "true", 4)) goto out;
    i += 4;
    goto after;
  case 'f':
    if (n - i < 5 || memcmp(s + i, "false", 5)) goto out;
    i += 5;
    goto after;
  case 'n':
    if (n - i < 4 || memcmp(s + i, "null", 4)) goto out;
    i += 4;
    goto after;
  default:
    if (scan_number(s, n, &i) < 0) goto out;
    goto after;
  }
member:
  i = skip_ws(s, n, i);
  if (i >= n || s[i] != '"') goto out;
  key.n = 0;
  if (scan_string(s, n, &i, depth == 1 ? &key : NULL) < 0) goto out;
  i = skip_ws(s, n, i);
  if (i >= n || s[i] != ':') goto out;
  i = skip_ws(s, n, i + 1);
  if (depth == 1) pending = -1;
  if (depth == 1)
    for (int w = 0; w < nwant; w++)
      if (key.n == strlen(want[w].key) && memcmp(key.p, want[w].key, key.n) == 0) pending = w, vstart = i;
  goto value;
after:
  if (depth == 1 && stack[0] == '{' && pending >= 0) {
    want[pending].start = vstart, want[pending].end = i, want[pending].found = 1;
    pending = -1;
  }
  i = skip_ws(s, n, i);
  if (depth == 0) {
    if (i == n) result = top_object ? 1 : 0;
    goto out;
  }
  if (i >= n) goto out;
  if (s[i] == ',') {
    i++;
    if (stack[depth - 1] == '{') goto member;
    goto value;
  }
  if (s[i] == (stack[depth - 1] == '{' ? '}' : ']')) {
    depth--, i++;
    goto after;
  }
out:
  free(stack);
  free(key.p);
  return result;
}

/* The decoded string value of a found member, or NULL if absent or not a string. */
static char *member_string(const char *s, const struct member *m, size_t *len) {
  if (!m->found || s[m->start] != '"') return NULL;
  struct buf out = {0};
  size_t i = m->start;
  buf_add(&out, "", 0);
  scan_string(s, m->end, &i, &out);
  *len = out.n;
  return out.p;
}

/* ---- output ---- */

static struct buf cni_version;

static void write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return;
    }
    p += w, n -= (size_t)w;
  }
}

static void finish(const char *text, size_t n, int code) {
  write_all(1, text, n);
  if (n == 0 || text[n - 1] != '\n') write_all(1, "\n", 1);
  exit(code);
}

static void fail(int code, const char *msg, const struct buf *details) {
  struct buf b = {0};
  buf_str(&b, "{\"cniVersion\":");
  buf_json_string(&b, cni_version.p, cni_version.n);
  buf_fmt(&b, ",\"code\":%d,\"msg\":", code);
  buf_json_string(&b, msg, strlen(msg));
  if (details) {
    buf_str(&b, ",\"details\":");
    buf_json_string(&b, details->p, details->n);
  }
  buf_str(&b, "}");
  finish(b.p, b.n, 1);
}

static void failf(int code, const char *msg, const char *fmt, ...) {
  char tmp[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  struct buf d = {0};
  buf_add(&d, tmp, n < 0 ? 0 : (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
  fail(code, msg, &d);
}

static const char *errname(int e) {
  const char *name = strerrorname_np(e);
  return name ? name : "error";
}

/* ---- HTTP over the unix socket ---- */

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == '\r' || c == '\n'; }

/* NETD_CNI_TIMEOUT_MS: decimal digits (blanks around allowed), clamped to 1..2^31-1 ms; else (or 0) 120 s. */
static long long timeout_ms(void) {
  const char *t = getenv("NETD_CNI_TIMEOUT_MS");
  if (!t) return 120000;
  while (is_space(*t)) t++;
  long long v = 0;
  const char *d = t;
  while (*d >= '0' && *d <= '9') {
    v = v * 10 + (*d - '0');
    if (v > MAX_TIMEOUT_MS) v = MAX_TIMEOUT_MS; /* saturate: no overflow */
    d++;
  }
  const char *e = d;
  while (is_space(*e)) e++;
  if (d == t || *e || v == 0) return 120000;
  return v;
}

/* A Content-Length value: decimal digits only (as the JS plugin), else -1; saturates far above MAX_REPLY. */
static long long decimal_length(const char *v, size_t n) {
  if (n == 0) return -1;
  long long len = 0;
  for (size_t i = 0; i < n; i++) {
    if (v[i] < '0' || v[i] > '9') return -1;
    if (len < (1LL << 40)) len = len * 10 + (v[i] - '0');
  }
  return len;
}

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct reply {
  int status;
  const char *body;
  size_t body_len;
  struct buf decoded; /* a chunked body, decoded */
  size_t need;        /* parsing again tells nothing new before the reply has this many bytes */
};

static const char *find(const char *p, size_t n, const char *needle) {
  return memmem(p, n, needle, strlen(needle));
}

/* Decodes a chunked body into r->decoded; 1 when complete, 0 while incomplete or malformed. */
static int unchunk(const char *p, size_t n, size_t offset, struct reply *r) {
  size_t at = 0;
  r->decoded.n = 0;
  buf_add(&r->decoded, "", 0);
  for (;;) {
    const char *eol = find(p + at, n - at, "\r\n");
    if (!eol) return 0;
    char line[64];
    size_t ll = (size_t)(eol - (p + at));
    if (ll >= sizeof line) ll = sizeof line - 1;
    memcpy(line, p + at, ll);
    line[ll] = 0;
    char *end;
    long size = strtol(line, &end, 16);
    if (end == line || size < 0) return 0;
    size_t data = (size_t)(eol - p) + 2;
    if (size == 0) return 1;
    r->need = offset + data + (size_t)size + 2;
    if (data + (size_t)size + 2 > n) return 0;
    buf_add(&r->decoded, p + data, (size_t)size);
    at = data + (size_t)size + 2;
  }
}

static int header_is(const char *line, size_t len, const char *name, const char **value, size_t *vlen) {
  const char *colon = memchr(line, ':', len);
  if (!colon || colon == line) return 0;
  const char *a = line, *b = colon;
  while (a < b && is_space(*a)) a++;
  while (b > a && is_space(b[-1])) b--;
  if ((size_t)(b - a) != strlen(name) || strncasecmp(a, name, (size_t)(b - a)) != 0) return 0;
  const char *v = colon + 1, *e = line + len;
  while (v < e && is_space(*v)) v++;
  while (e > v && is_space(e[-1])) e--;
  *value = v, *vlen = (size_t)(e - v);
  return 1;
}

/* Parses the reply once `raw` holds all of it (Content-Length, chunked, or closed): 1, else 0. */
static int parse_reply(const char *raw, size_t n, int closed, struct reply *r) {
  const char *end = find(raw, n, "\r\n\r\n");
  if (!end) return 0;
  size_t head = (size_t)(end - raw);
  const char *rest = end + 4;
  size_t rest_len = n - head - 4;
  if (head < 12 || memcmp(raw, "HTTP/1.", 7) != 0 || (raw[7] != '0' && raw[7] != '1') || raw[8] != ' ' ||
      raw[9] < '0' || raw[9] > '9' || raw[10] < '0' || raw[10] > '9' || raw[11] < '0' || raw[11] > '9') {
    r->status = 0, r->body = "", r->body_len = 0;
    return 1;
  }
  r->status = (raw[9] - '0') * 100 + (raw[10] - '0') * 10 + (raw[11] - '0');
  int chunked = 0, has_len = 0;
  long long len = 0;
  const char *first = find(raw, head, "\r\n");
  size_t pos = first ? (size_t)(first - raw) + 2 : head;
  while (pos < head) {
    const char *eol = find(raw + pos, head - pos, "\r\n");
    size_t ll = eol ? (size_t)(eol - (raw + pos)) : head - pos;
    const char *v;
    size_t vl;
    if (header_is(raw + pos, ll, "transfer-encoding", &v, &vl)) {
      chunked = 0; /* the last such header counts, as in the JS plugin; the whole value is searched */
      for (size_t k = 0; k + 7 <= vl && !chunked; k++) chunked = strncasecmp(v + k, "chunked", 7) == 0;
    }
    if (header_is(raw + pos, ll, "content-length", &v, &vl)) {
      len = decimal_length(v, vl);
      has_len = 1;
    }
    pos += ll + 2;
  }
  if (r->status == 204 || r->status == 304) {
    r->body = "", r->body_len = 0;
    return 1;
  }
  if (chunked) {
    if (!unchunk(rest, rest_len, head + 4, r)) return 0;
    r->body = r->decoded.p, r->body_len = r->decoded.n;
    return 1;
  }
  if (has_len) {
    r->need = len >= 0 ? head + 4 + (size_t)len : SIZE_MAX;
    if (!(len >= 0 && rest_len >= (size_t)len)) return 0;
    r->body = rest, r->body_len = (size_t)len;
    return 1;
  }
  if (!closed) return 0;
  r->body = rest, r->body_len = rest_len;
  return 1;
}

/* A daemon's error reply: its body if that is a CNI error object, else one made from the status. */
static void error_reply(const struct reply *r) {
  struct member m[] = {{"code", 0, 0, 0}, {"msg", 0, 0, 0}, {"message", 0, 0, 0}};
  const char *b = r->body;
  char *message = NULL;
  size_t mlen = 0, dummy;
  if (scan_json(b, r->body_len, m, 3) == 1) {
    int is_int = 0;
    if (m[0].found && (b[m[0].start] == '-' || (b[m[0].start] >= '0' && b[m[0].start] <= '9'))) {
      char *num = strndup(b + m[0].start, m[0].end - m[0].start);
      if (!num) die_oom();
      double v = strtod(num, NULL);
      is_int = isfinite(v) && floor(v) == v;
      free(num);
    }
    char *msg = member_string(b, &m[1], &dummy);
    if (is_int && msg) finish(b, r->body_len, 1);
    message = member_string(b, &m[2], &mlen);
  }
  struct buf d = {0};
  if (message) buf_add(&d, message, mlen);
  else buf_fmt(&d, "HTTP %d", r->status);
  if (r->status == 503) fail(11, "netd is busy, try again later", &d);
  if (r->status == 413) fail(7, "network configuration too large", &d);
  if (message) {
    struct buf st = {0};
    buf_fmt(&st, "HTTP %d", r->status);
    fail(100, message, &st);
  }
  struct buf msg = {0};
  buf_fmt(&msg, "netd answered HTTP %d", r->status);
  fail(100, msg.p, NULL);
}

static void post(const char *path, const struct buf *payload) {
  long long tmo = timeout_ms();
  long long deadline = now_ms() + tmo;
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  size_t plen = strlen(path);
  if (plen >= sizeof sa.sun_path) failf(50, "netd is not available", "cannot connect to %s: %s", path, "ENAMETOOLONG");
  memcpy(sa.sun_path, path, plen + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) failf(50, "netd is not available", "cannot connect to %s: %s", path, errname(errno));
  while (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    if (errno == EINTR) continue;
    if (errno == EAGAIN) failf(11, "netd is busy, try again later", "cannot connect to %s: %s", path, "EAGAIN");
    failf(50, "netd is not available", "cannot connect to %s: %s", path, errname(errno));
  }
  struct buf req = {0};
  buf_fmt(&req, "POST /netd/v1/cni HTTP/1.1\r\nHost: netd\r\nContent-Type: application/json\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", payload->n);
  buf_add(&req, payload->p, payload->n);
  size_t sent = 0;
  struct buf in = {0};
  buf_add(&in, "", 0);
  struct reply r = {0};
  int closed = 0, err = 0, send_err = 0;
  while (!closed) {
    long long left = deadline - now_ms();
    if (left <= 0) failf(11, "netd did not answer in time, try again later", "no reply on %s within %.15g s", path, (double)tmo / 1000);
    struct pollfd pfd = {.fd = fd, .events = POLLIN | (sent < req.n ? POLLOUT : 0)};
    int pr = poll(&pfd, 1, left > 1000000 ? 1000000 : (int)left);
    if (pr < 0 && errno != EINTR) failf(11, "netd closed the connection before answering, try again later", "%s: %s", path, errname(errno));
    if (pr <= 0) continue;
    /* Read before sending: a daemon that refused the request (413) answered before it hung up. */
    if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
      char tmp[65536];
      ssize_t got = read(fd, tmp, sizeof tmp);
      if (got > 0) {
        buf_add(&in, tmp, (size_t)got);
        if (in.n > MAX_REPLY) failf(11, "netd closed the connection before answering, try again later", "%s: %s", path, "EMSGSIZE");
        if (in.n >= r.need) {
          r.need = in.n + 1;
          if (parse_reply(in.p, in.n, 0, &r)) break;
        }
        continue;
      } else if (got == 0) {
        closed = 1;
      } else if (errno != EAGAIN && errno != EINTR) {
        err = errno;
        closed = 1;
      }
    }
    if (!closed && sent < req.n && (pfd.revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t w = send(fd, req.p + sent, req.n - sent, MSG_NOSIGNAL);
      if (w > 0) sent += (size_t)w;
      else if (w < 0 && errno != EAGAIN && errno != EINTR) {
        /* EPIPE / ECONNRESET: stop sending, read what the daemon answered up to EOF. */
        send_err = errno;
        sent = req.n;
      }
    }
  }
  close(fd);
  if (closed && !parse_reply(in.p, in.n, 1, &r))
    failf(11, "netd closed the connection before answering, try again later", "%s: %s", path, in.n == 0 && (send_err || err) ? errname(send_err ? send_err : err) : "EPIPE");
  if (r.status >= 200 && r.status < 300) {
    if (r.body_len == 0) exit(0);
    finish(r.body, r.body_len, 0);
  }
  error_reply(&r);
}

/* ---- main ---- */

int main(void) {
  signal(SIGPIPE, SIG_IGN); /* a closed stdout is EPIPE from write(), not death */
  buf_str(&cni_version, DEFAULT_VERSION);
  struct buf in = {0};
  buf_add(&in, "", 0);
  for (;;) {
    char tmp[65536];
    ssize_t got = read(0, tmp, sizeof tmp);
    if (got < 0 && (errno == EINTR || errno == EAGAIN)) {
      if (errno == EAGAIN) {
        struct pollfd p = {.fd = 0, .events = POLLIN};
        poll(&p, 1, -1);
      }
      continue;
    }
    if (got <= 0) break;
    if (in.n + (size_t)got > MAX_STDIN) failf(7, "network configuration too large", "stdin exceeds %u bytes", MAX_STDIN);
    buf_add(&in, tmp, (size_t)got);
  }

  struct member m[] = {{"cniVersion", 0, 0, 0}, {"host", 0, 0, 0}};
  const char *parse_error = NULL;
  int kind = -1;
  if (!valid_utf8((const unsigned char *)in.p, in.n)) parse_error = "not valid UTF-8";
  else if ((kind = scan_json(in.p, in.n, m, 2)) < 0) parse_error = "not valid JSON";
  size_t vlen;
  char *v = kind == 1 ? member_string(in.p, &m[0], &vlen) : NULL;
  if (v) cni_version.n = 0, buf_add(&cni_version, v, vlen);

  const char *command = getenv("CNI_COMMAND");
  if (!command || !*command) fail(4, "CNI_COMMAND is not set", NULL);
  if (strcmp(command, "VERSION") == 0) {
    if (parse_error && skip_ws(in.p, in.n, 0) != in.n) failf(6, "cannot decode the network configuration on stdin", "%s", parse_error);
    struct buf out = {0};
    buf_str(&out, "{\"cniVersion\":");
    buf_json_string(&out, cni_version.p, cni_version.n);
    buf_str(&out, ",\"supportedVersions\":" SUPPORTED "}");
    finish(out.p, out.n, 0);
  }
  if (parse_error) failf(6, "cannot decode the network configuration on stdin", "%s", parse_error);

  const char *env_host = getenv("NETD_HOST");
  const char *host = env_host && *env_host ? env_host : DEFAULT_HOST;
  size_t host_len = strlen(host);
  if (kind == 1 && m[1].found) {
    char *h = member_string(in.p, &m[1], &host_len);
    if (!h) {
      struct buf d = {0};
      buf_str(&d, "\"host\" must be a string \"unix:///path\"");
      fail(7, "invalid network configuration", &d);
    }
    host = h;
  }
  if (host_len < 8 || memcmp(host, "unix:///", 8) != 0 || memchr(host, 0, host_len)) {
    struct buf d = {0};
    buf_str(&d, "host ");
    buf_json_string(&d, host, host_len);
    buf_str(&d, ": only unix:///path is supported");
    fail(7, "invalid network configuration", &d);
  }
  const char *path = host + 7;

  static const char *const names[] = {"CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS", "CNI_PATH"};
  struct buf body = {0};
  buf_str(&body, "{\"env\":{");
  int first = 1;
  for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
    const char *val = getenv(names[k]);
    if (!val) continue;
    if (!first) buf_str(&body, ",");
    first = 0;
    buf_json_string(&body, names[k], strlen(names[k]));
    buf_str(&body, ":");
    buf_json_string(&body, val, strlen(val));
  }
  buf_str(&body, "},\"stdin\":");
  buf_json_string(&body, in.p, in.n);
  buf_str(&body, "}");
  if (body.n > MAX_BODY) failf(7, "network configuration too large", "the request to netd exceeds %u bytes", MAX_BODY);
  post(path, &body);
  return 0;
}
