/*
 * forward-server: conch-container's forwarding helper, run in the user's
 * container by the gateway.
 *
 * It speaks ContainerSSH's forward-server protocol on stdin and stdout: a
 * stream of CBOR maps {"Type", "ConnectionId", "Payload"}. The first packet
 * is a setup that says what to do: dial out (ssh -L, ssh -D, a socket), or
 * listen (ssh -R on a port or socket, an X11 display, an agent socket). Then
 * each connection's bytes travel as DATA packets, and connections open and
 * close with NEW_CONNECTION and CLOSE_CONNECTION. Two additions that
 * ContainerSSH's side ignores: CLOSE_WRITE (a half-close) and the port or
 * display actually bound in the setup's answer.
 *
 * It is one static program with no dependencies, because the images it runs
 * in may have nothing else (the project's guest image is static busybox). One
 * poll loop, no threads: sockets are non-blocking (connects too), writes to
 * stdout block (the gateway's stream backing up is what slows the sockets
 * down), and bytes waiting for the sockets are bounded: while one socket holds
 * more than MAX_PENDING, or all of them MAX_TOTAL_PENDING, stdin is not read
 * (the gateway's stream then backs up to the SSH client). The one wait the
 * loop cannot avoid is a name lookup: getaddrinfo blocks, bounded by the
 * resolver's own timeouts.
 *
 * Usage: forward-server [forward-server]
 * (the second form lets the agent exec it under its own sub-command's name).
 * Exit: 0 at the end of stdin or of the last connection after
 * NO_MORE_CONNECTIONS, 1 bad usage or setup, 2 a malformed packet stream.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

enum { P_SETUP, P_SUCCESS, P_ERROR, P_DATA, P_NEW, P_CLOSE, P_NO_MORE, P_CLOSE_WRITE };
enum { C_X11, C_PORT_FORWARD, C_PORT_DIAL, C_SOCKET_FORWARD, C_SOCKET_DIAL, C_SSH_AGENT };

/* A connection's life: dialled ones start CONNECTING, accepted ones WAITING
 * for the gateway's answer to NEW_CONNECTION; both then carry bytes OPEN. */
enum { S_CONNECTING, S_WAITING, S_OPEN };

#define MAX_CONNECTIONS 4096
#define MAX_LISTENERS 16
#define MAX_PAYLOAD (16u * 1024 * 1024)
/* A packet is its payload and a few small fields; anything much larger is no packet. */
#define MAX_PACKET (MAX_PAYLOAD + 64 * 1024)
/* Fields of a packet map; ContainerSSH writes 3, the setup payload 8. */
#define MAX_MAP_FIELDS 64
#define READ_SIZE (128 * 1024)
#define MAX_PENDING (1024 * 1024)
#define MAX_TOTAL_PENDING (32 * 1024 * 1024)
/* A connection's idle buffer above this size is given back. */
#define KEEP_BUFFER (256 * 1024)
#define INPUT_BUFFER (512 * 1024)
#define MAX_TEXT 1024
#define CONNECT_TIMEOUT_MS 30000

struct buffer {
	unsigned char *data;
	size_t start, end, size;
};

struct connection {
	uint64_t id;
	int fd;
	int state;
	int dead;       /* closed; out of the table at the next compaction */
	int over;       /* counted in over_limit: pending() > MAX_PENDING */
	int read_done;  /* the socket gave EOF; CLOSE_WRITE sent */
	int write_done; /* the gateway sent CLOSE_WRITE */
	int shut;       /* shutdown(SHUT_WR) done */
	struct buffer out;
	/* Dialling: the addresses still to try, and what the errors name. */
	struct addrinfo *found, *trying;
	struct addrinfo unix_candidate;
	struct sockaddr_un unix_address;
	long long deadline;
	int error;
	char target[MAX_TEXT + 32];
	struct connection *next_dead;
};

struct listener {
	int fd;
	int unix_socket;
	char address[MAX_TEXT]; /* what NEW_CONNECTION names as the connected address */
	unsigned port;
	int owns_path; /* a socket file this process created, removed when it stops */
	dev_t dev;
	ino_t ino;
};

struct packet {
	uint64_t type, id;
	const unsigned char *payload;
	size_t payload_len;
};

/* The fields of a SETUP or NEW_CONNECTION payload. */
struct fields {
	uint64_t connection_type, bind_port, connected_port;
	int single;
	char bind_host[MAX_TEXT], protocol[16], connected_address[MAX_TEXT];
	const char *problem; /* the first field that could not be taken, or NULL */
};

/* Open connections, in increasing id order (ids only grow), so lookups halve. */
static struct connection *table[MAX_CONNECTIONS];
static int table_count;
static int live_count, connecting_count;
static struct connection *graveyard; /* dead, freed at the top of the loop */
static int over_limit;               /* connections holding more than MAX_PENDING */
static size_t total_pending;
static struct listener listeners[MAX_LISTENERS];
static int listener_count;
static int listening_mode, no_more, single_connection, accept_paused;
static int setup_type;
static uint64_t last_id, last_noted_id;
static unsigned char read_buffer[READ_SIZE];

static void note(const char *format, ...)
{
	va_list args;
	va_start(args, format);
	fputs("forward-server: ", stderr);
	vfprintf(stderr, format, args);
	fputc('\n', stderr);
	va_end(args);
}

static long long now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Remove a socket file this process made, unless something else took its place since. */
static void remove_socket_file(struct listener *l)
{
	struct sockaddr_un address;
	socklen_t size = sizeof address;
	struct stat st;
	if (!l->owns_path)
		return;
	l->owns_path = 0;
	if (getsockname(l->fd, (struct sockaddr *)&address, &size) == 0 &&
	    lstat(address.sun_path, &st) == 0 && st.st_dev == l->dev && st.st_ino == l->ino)
		unlink(address.sun_path);
}

static void close_listeners(void)
{
	for (int i = 0; i < listener_count; i++) {
		remove_socket_file(&listeners[i]);
		close(listeners[i].fd);
	}
	listener_count = 0;
}

static void finish(int status)
{
	for (int i = 0; i < table_count; i++)
		if (!table[i]->dead)
			close(table[i]->fd);
	close_listeners();
	exit(status);
}

/* TERM, INT or HUP: the socket files go with the process (a stale file would
 * make the next listen on that path replace it, but an agent socket path in
 * a user's listing that leads nowhere is confusing). Only unlink and signal
 * calls here, which are safe in a handler. */
static void on_signal(int number)
{
	for (int i = 0; i < listener_count; i++) {
		if (listeners[i].owns_path && listeners[i].unix_socket) {
			struct sockaddr_un address;
			socklen_t size = sizeof address;
			if (getsockname(listeners[i].fd, (struct sockaddr *)&address, &size) == 0)
				unlink(address.sun_path);
		}
	}
	signal(number, SIG_DFL);
	raise(number);
}

/* ---- output: complete writes to stdout ---- */

static void write_out(struct iovec *iov, int count)
{
	while (count) {
		ssize_t n = writev(STDOUT_FILENO, iov, count);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				/* stdout shared with a non-blocking reader's settings: wait, as a blocking write would */
				struct pollfd p = {STDOUT_FILENO, POLLOUT, 0};
				poll(&p, 1, -1);
				continue;
			}
			finish(0); /* the gateway is gone: there is nobody left to tell */
		}
		while (count && (size_t)n >= iov->iov_len) {
			n -= (ssize_t)iov->iov_len;
			iov++;
			count--;
		}
		if (count) {
			iov->iov_base = (char *)iov->iov_base + n;
			iov->iov_len -= (size_t)n;
		}
	}
}

static size_t head(unsigned char *out, int major, uint64_t value)
{
	unsigned char kind = (unsigned char)(major << 5);
	if (value < 24) {
		out[0] = kind | (unsigned char)value;
		return 1;
	}
	int width = value < 0x100 ? 1 : value < 0x10000 ? 2 : value < 0x100000000ull ? 4 : 8;
	out[0] = kind | (unsigned char)(width == 1 ? 24 : width == 2 ? 25 : width == 4 ? 26 : 27);
	for (int i = 0; i < width; i++)
		out[1 + i] = (unsigned char)(value >> (8 * (width - 1 - i)));
	return 1 + (size_t)width;
}

static size_t text(unsigned char *out, const char *value)
{
	size_t length = strlen(value);
	size_t n = head(out, 3, length);
	memcpy(out + n, value, length);
	return n + length;
}

/* One packet, its keys in the order ContainerSSH writes them. */
static void send_packet(int type, uint64_t id, const unsigned char *payload, size_t length)
{
	unsigned char header[64];
	size_t n = head(header, 5, 3);
	n += text(header + n, "Type");
	n += head(header + n, 0, (uint64_t)type);
	n += text(header + n, "ConnectionId");
	n += head(header + n, 0, id);
	n += text(header + n, "Payload");
	if (length == 0)
		header[n++] = 0xf6; /* null, as Go writes an empty slice */
	else
		n += head(header + n, 2, length);
	struct iovec iov[2] = {{header, n}, {(void *)payload, length}};
	write_out(iov, length ? 2 : 1);
}

static void send_error(uint64_t id, const char *format, ...)
{
	char message[MAX_TEXT + 256];
	va_list args;
	va_start(args, format);
	vsnprintf(message, sizeof message, format, args);
	va_end(args);
	send_packet(P_ERROR, id, (const unsigned char *)message, strlen(message));
}

/* ---- input: the protocol's subset of CBOR ---- */

enum { INCOMPLETE = -1, MALFORMED = -2 };

struct reader {
	const unsigned char *data;
	size_t length, pos;
};

/* One item's head: major type and argument. Simple values false, true and
 * null come back as major 7 with 20, 21 or 22; every other simple value, a
 * float, an indefinite length or a reserved one is MALFORMED. */
static int read_head(struct reader *r, int *major, uint64_t *value)
{
	if (r->pos >= r->length)
		return INCOMPLETE;
	unsigned char initial = r->data[r->pos++];
	int info = initial & 0x1f;
	*major = initial >> 5;
	if (*major == 7) {
		if (info < 20 || info > 22)
			return MALFORMED;
		*value = (uint64_t)info;
		return 0;
	}
	if (info < 24) {
		*value = (uint64_t)info;
		return 0;
	}
	if (info > 27)
		return MALFORMED;
	size_t width = (size_t)1 << (info - 24);
	if (r->length - r->pos < width)
		return INCOMPLETE;
	uint64_t v = 0;
	for (size_t i = 0; i < width; i++)
		v = v << 8 | r->data[r->pos++];
	*value = v;
	return 0;
}

/* One scalar item: an unsigned integer, a string (pointing into the input), or false/true/null. */
struct item {
	int major;
	uint64_t value;
	const unsigned char *bytes;
};

#define IS_NULL(item) ((item)->major == 7 && (item)->value == 22)

static int read_item(struct reader *r, struct item *item)
{
	int status = read_head(r, &item->major, &item->value);
	if (status)
		return status;
	if (item->major == 2 || item->major == 3) {
		if (item->value > MAX_PAYLOAD)
			return MALFORMED; /* before waiting for bytes that may never be accepted */
		if (r->length - r->pos < item->value)
			return INCOMPLETE;
		item->bytes = r->data + r->pos;
		r->pos += item->value;
		return 0;
	}
	if (item->major == 0 || item->major == 7)
		return 0;
	return MALFORMED; /* negative integers, arrays, nested maps, tags */
}

static int key_is(const struct item *key, const char *name)
{
	return key->value == strlen(name) && !memcmp(key->bytes, name, key->value);
}

/* A map of text keys and scalar values, each field through `take` (which
 * returns nonzero for a known field of the wrong kind). Returns the bytes
 * used, INCOMPLETE or MALFORMED. */
static long read_map(const unsigned char *data, size_t length,
                     int (*take)(void *, const struct item *, const struct item *), void *target)
{
	struct reader r = {data, length, 0};
	int major;
	uint64_t count;
	int status = read_head(&r, &major, &count);
	if (status)
		return status;
	if (major != 5 || count > MAX_MAP_FIELDS)
		return MALFORMED;
	for (uint64_t i = 0; i < count; i++) {
		struct item key, value;
		if ((status = read_item(&r, &key)) || (status = read_item(&r, &value)))
			return status;
		if (key.major != 3 || take(target, &key, &value))
			return MALFORMED;
	}
	return (long)r.pos;
}

static int take_packet_field(void *target, const struct item *key, const struct item *value)
{
	struct packet *p = target;
	if (key_is(key, "Type")) {
		if (value->major != 0)
			return 1;
		p->type = value->value;
	} else if (key_is(key, "ConnectionId")) {
		if (value->major != 0)
			return 1;
		p->id = value->value;
	} else if (key_is(key, "Payload")) {
		if (value->major == 2) {
			p->payload = value->bytes;
			p->payload_len = value->value;
		} else if (!IS_NULL(value)) {
			return 1;
		}
	}
	return 0; /* an unknown key: skipped */
}

/* A text field into `out`; a null is "". Text that does not fit, or that holds
 * a NUL byte (which would cut a path or a name short), is refused. */
static int take_text(struct fields *f, const char *name, char *out, size_t size, const struct item *value)
{
	if (IS_NULL(value)) {
		out[0] = 0;
		return 0;
	}
	if (value->major != 3 || value->value >= size || memchr(value->bytes, 0, value->value)) {
		f->problem = name;
		return 0;
	}
	memcpy(out, value->bytes, value->value);
	out[value->value] = 0;
	return 0;
}

static int take_number(struct fields *f, const char *name, uint64_t *out, const struct item *value)
{
	if (value->major == 0)
		*out = value->value;
	else if (!IS_NULL(value))
		f->problem = name;
	return 0;
}

/* The fields of both payloads; what a payload does not name stays 0 or "". A
 * known field of the wrong kind is noted in `problem` (the answer names it). */
static int take_fields(void *target, const struct item *key, const struct item *value)
{
	struct fields *f = target;
	if (key_is(key, "ConnectionType"))
		return take_number(f, "ConnectionType", &f->connection_type, value);
	if (key_is(key, "BindPort"))
		return take_number(f, "BindPort", &f->bind_port, value);
	if (key_is(key, "ConnectedPort"))
		return take_number(f, "ConnectedPort", &f->connected_port, value);
	if (key_is(key, "BindHost"))
		return take_text(f, "BindHost", f->bind_host, sizeof f->bind_host, value);
	if (key_is(key, "Protocol"))
		return take_text(f, "Protocol", f->protocol, sizeof f->protocol, value);
	if (key_is(key, "ConnectedAddress"))
		return take_text(f, "ConnectedAddress", f->connected_address,
		                 sizeof f->connected_address, value);
	if (key_is(key, "SingleConnection")) {
		if (value->major == 7)
			f->single = value->value == 21;
		else
			f->problem = "SingleConnection";
	}
	/* Screen, AuthProtocol, AuthCookie (the gateway handles X11 authentication),
	 * the originator of a dial and unknown keys: not needed here. */
	return 0;
}

/* The payload's fields, or 0 with f->problem saying why not. */
static int read_fields(const struct packet *p, struct fields *f)
{
	memset(f, 0, sizeof *f);
	if (!p->payload_len || read_map(p->payload, p->payload_len, take_fields, f) != (long)p->payload_len) {
		f->problem = "payload, not one CBOR map";
		return 0;
	}
	return f->problem == NULL;
}

/* ---- connections ---- */

static size_t pending(const struct connection *c)
{
	return c->out.end - c->out.start;
}

/* Keep over_limit and total_pending true to `c`'s buffer; call after every change to it. */
static void account(struct connection *c, size_t before)
{
	size_t now = c->dead ? 0 : pending(c);
	total_pending = total_pending - before + now;
	int over = now > MAX_PENDING;
	if (over != c->over) {
		over_limit += over ? 1 : -1;
		c->over = over;
	}
}

/* Whether stdin may be read: nothing waits beyond its bounds. */
static int input_allowed(void)
{
	return !over_limit && total_pending <= MAX_TOTAL_PENDING;
}

static struct connection *find(uint64_t id)
{
	int low = 0, high = table_count;
	while (low < high) {
		int middle = low + (high - low) / 2;
		if (table[middle]->id < id)
			low = middle + 1;
		else
			high = middle;
	}
	if (low < table_count && table[low]->id == id && !table[low]->dead)
		return table[low];
	return NULL;
}

/* Take dead connections out of the table, keeping the order; they are freed
 * at the top of the loop, after nothing in this turn of it points at them. */
static void compact(void)
{
	int kept = 0;
	for (int i = 0; i < table_count; i++) {
		struct connection *c = table[i];
		if (c->dead) {
			c->next_dead = graveyard;
			graveyard = c;
		} else {
			table[kept++] = c;
		}
	}
	table_count = kept;
}

static void bury(void)
{
	while (graveyard) {
		struct connection *c = graveyard;
		graveyard = c->next_dead;
		free(c);
	}
}

static struct connection *add_connection(uint64_t id, int fd, int state)
{
	if (table_count == MAX_CONNECTIONS)
		compact(); /* live_count < MAX_CONNECTIONS here, so room is made */
	struct connection *c = calloc(1, sizeof *c);
	if (!c) {
		note("out of memory");
		finish(1);
	}
	c->id = id;
	c->fd = fd;
	c->state = state;
	table[table_count++] = c;
	live_count++;
	return c;
}

static void drop(struct connection *c, int tell)
{
	size_t before = pending(c);
	if (tell)
		send_packet(P_CLOSE, c->id, NULL, 0);
	if (c->fd >= 0)
		close(c->fd);
	if (c->state == S_CONNECTING)
		connecting_count--;
	c->fd = -1;
	c->dead = 1;
	account(c, before);
	free(c->out.data);
	c->out = (struct buffer){0};
	if (c->found)
		freeaddrinfo(c->found);
	c->found = c->trying = NULL;
	live_count--;
	accept_paused = 0; /* a descriptor is free again */
}

static void queue(struct connection *c, const unsigned char *data, size_t length)
{
	struct buffer *b = &c->out;
	size_t before = pending(c);
	if (b->start == b->end)
		b->start = b->end = 0;
	if (b->size - b->end < length) {
		size_t used = b->end - b->start;
		if (used)
			memmove(b->data, b->data + b->start, used);
		b->start = 0;
		b->end = used;
		if (b->size - used < length) {
			size_t size = b->size ? b->size : 65536;
			while (size - used < length)
				size *= 2;
			unsigned char *grown = realloc(b->data, size);
			if (!grown) {
				note("out of memory");
				finish(1);
			}
			b->data = grown;
			b->size = size;
		}
	}
	memcpy(b->data + b->end, data, length);
	b->end += length;
	account(c, before);
}

/* After a write or a half-close: shut the sending side, or end a connection done both ways. */
static int settle(struct connection *c)
{
	if (c->state != S_OPEN)
		return 0;
	if (c->write_done && !c->shut && !pending(c)) {
		shutdown(c->fd, SHUT_WR);
		c->shut = 1;
	}
	if (c->shut && c->read_done) {
		drop(c, 1);
		return 1;
	}
	return 0;
}

/* Write what the socket takes of its buffer; 1 if the connection was dropped. */
static int flush(struct connection *c)
{
	size_t before = pending(c);
	while (pending(c)) {
		ssize_t n = write(c->fd, c->out.data + c->out.start, pending(c));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			account(c, before);
			drop(c, 1); /* reset or gone: the gateway learns it */
			return 1;
		}
		c->out.start += (size_t)n;
	}
	if (!pending(c) && c->out.size > KEEP_BUFFER) {
		free(c->out.data); /* a burst is over: an idle connection holds no memory */
		c->out = (struct buffer){0};
	}
	account(c, before);
	return settle(c);
}

/* Bytes from the gateway for a connection: straight to the socket when nothing
 * waits before them, the rest kept. */
static void deliver(struct connection *c, const unsigned char *data, size_t length)
{
	if (c->state == S_OPEN && !pending(c)) {
		while (length) {
			ssize_t n = write(c->fd, data, length);
			if (n < 0) {
				if (errno == EINTR)
					continue;
				if (errno == EAGAIN || errno == EWOULDBLOCK)
					break;
				drop(c, 1);
				return;
			}
			data += n;
			length -= (size_t)n;
		}
	}
	if (length)
		queue(c, data, length);
}

static void set_nonblocking(int fd)
{
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* ---- dialling ---- */

static void connected(struct connection *c)
{
	c->state = S_OPEN;
	connecting_count--;
	if (c->found)
		freeaddrinfo(c->found);
	c->found = c->trying = NULL;
	send_packet(P_SUCCESS, c->id, NULL, 0);
	if (pending(c)) /* bytes the gateway sent before the answer */
		flush(c);
	else
		settle(c);
}

/* Start connecting to the next address left; ERROR(id) when none is. */
static void try_next(struct connection *c)
{
	for (; c->trying; c->trying = c->trying->ai_next) {
		struct addrinfo *a = c->trying;
		int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
		if (fd < 0) {
			c->error = errno;
			continue;
		}
		if (connect(fd, a->ai_addr, a->ai_addrlen) == 0 || errno == EINPROGRESS) {
			c->fd = fd;
			c->deadline = now_ms() + CONNECT_TIMEOUT_MS;
			return; /* poll says when it is done */
		}
		c->error = errno == EAGAIN ? ECONNREFUSED : errno; /* EAGAIN: a Unix socket's backlog is full */
		close(fd);
	}
	send_error(c->id, "connect %s: %s", c->target, strerror(c->error));
	drop(c, 0);
}

/* A connecting socket became writable, failed, or ran out of time. */
static void connect_done(struct connection *c, int timed_out)
{
	int error = ETIMEDOUT;
	if (!timed_out) {
		socklen_t size = sizeof error;
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &error, &size) < 0)
			error = errno;
		if (error == 0) {
			connected(c);
			return;
		}
	}
	c->error = error;
	close(c->fd);
	c->fd = -1;
	c->trying = c->trying->ai_next;
	try_next(c);
}

static void dial(uint64_t id, const struct fields *f)
{
	if (live_count >= MAX_CONNECTIONS) {
		send_error(id, "too many connections");
		return;
	}
	int unix_socket = !strcmp(f->protocol, "unix");
	struct addrinfo *found = NULL;
	char port[24];
	snprintf(port, sizeof port, "%llu", (unsigned long long)f->connected_port);
	if (!unix_socket) {
		if (strcmp(f->protocol, "tcp") && f->protocol[0]) {
			send_error(id, "unknown protocol %s", f->protocol);
			return;
		}
		if (f->connected_port > 65535) {
			send_error(id, "connect %s:%s: no such port", f->connected_address, port);
			return;
		}
		struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
		int status = getaddrinfo(f->connected_address, port, &hints, &found);
		if (status) {
			send_error(id, "connect %s:%s: %s", f->connected_address, port,
			           status == EAI_SYSTEM ? strerror(errno) : gai_strerror(status));
			return;
		}
	} else if (strlen(f->connected_address) >= sizeof ((struct sockaddr_un *)0)->sun_path ||
	           !f->connected_address[0]) {
		send_error(id, "connect %s: %s", f->connected_address,
		           f->connected_address[0] ? "path too long" : "no path");
		return;
	}
	struct connection *c = add_connection(id, -1, S_CONNECTING);
	connecting_count++;
	c->error = ECONNREFUSED;
	if (unix_socket) {
		snprintf(c->target, sizeof c->target, "%s", f->connected_address);
		c->unix_address.sun_family = AF_UNIX;
		strcpy(c->unix_address.sun_path, f->connected_address);
		c->unix_candidate = (struct addrinfo){
			.ai_family = AF_UNIX,
			.ai_socktype = SOCK_STREAM,
			.ai_addr = (struct sockaddr *)&c->unix_address,
			.ai_addrlen = sizeof c->unix_address,
		};
		c->trying = &c->unix_candidate;
	} else {
		snprintf(c->target, sizeof c->target, "%s:%s", f->connected_address, port);
		c->found = c->trying = found;
	}
	try_next(c);
}

/* ---- listening ---- */

static int add_listener(int fd, const char *address, unsigned port, int unix_socket)
{
	if (listen(fd, 128) < 0) {
		int error = errno;
		close(fd);
		return error;
	}
	set_nonblocking(fd);
	struct listener *l = &listeners[listener_count++];
	*l = (struct listener){.fd = fd, .unix_socket = unix_socket, .port = port};
	snprintf(l->address, sizeof l->address, "%s", address);
	return 0;
}

/* TCP on every address `host` names ("" and "0.0.0.0": all IPv4), all on one
 * port: the one asked for, or the one the first bind chose for port 0.
 * Returns 0, an error number, or minus a getaddrinfo error. */
static int listen_tcp(const char *host, unsigned port, unsigned *bound)
{
	const char *name = !host[0] || !strcmp(host, "*") ? "0.0.0.0" : host;
	char service[16];
	snprintf(service, sizeof service, "%u", port);
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
	struct addrinfo *found = NULL;
	int status = getaddrinfo(name, service, &hints, &found);
	if (status)
		return -status;
	int first = listener_count, error = EADDRNOTAVAIL;
	*bound = port;
	for (struct addrinfo *a = found; a && listener_count < MAX_LISTENERS; a = a->ai_next) {
		if (a->ai_family != AF_INET && a->ai_family != AF_INET6)
			continue;
		int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
		if (fd < 0) {
			error = errno;
			continue;
		}
		int on = 1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
		if (a->ai_family == AF_INET6) /* "::" is IPv6 only, as its name says */
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);
		if (*bound) {
			if (a->ai_family == AF_INET)
				((struct sockaddr_in *)a->ai_addr)->sin_port = htons((uint16_t)*bound);
			else
				((struct sockaddr_in6 *)a->ai_addr)->sin6_port = htons((uint16_t)*bound);
		}
		if (bind(fd, a->ai_addr, a->ai_addrlen) < 0) {
			/* e.g. no IPv6 in the container for "localhost": the other address serves */
			error = errno;
			close(fd);
			continue;
		}
		struct sockaddr_storage local;
		socklen_t size = sizeof local;
		getsockname(fd, (struct sockaddr *)&local, &size);
		*bound = ntohs(local.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&local)->sin6_port
		                                          : ((struct sockaddr_in *)&local)->sin_port);
		if ((error = add_listener(fd, host, 0, 0)))
			break;
	}
	freeaddrinfo(found);
	for (int i = first; i < listener_count; i++)
		listeners[i].port = *bound;
	return listener_count > first ? 0 : error;
}

/* Whether a program accepts connections on the socket at `path` (a socket file
 * nobody listens on is one left behind by a program that ended). */
static int socket_in_use(const char *path)
{
	struct sockaddr_un address = {.sun_family = AF_UNIX};
	strcpy(address.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 1;
	int refused = connect(fd, (struct sockaddr *)&address, sizeof address) < 0 &&
	              (errno == ECONNREFUSED || errno == ENOENT);
	close(fd);
	return !refused;
}

/* A Unix socket at `path` with `mode`: refused if the path is something
 * else or a socket in use, a stale socket replaced. */
static int listen_unix(const char *path, mode_t mode)
{
	struct sockaddr_un address = {.sun_family = AF_UNIX};
	if (!path[0])
		return ENOENT;
	if (strlen(path) >= sizeof address.sun_path)
		return ENAMETOOLONG;
	struct stat st;
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return EEXIST;
		if (socket_in_use(path))
			return EADDRINUSE;
		unlink(path);
	}
	strcpy(address.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return errno;
	/* Created with `mode` from the start: no moment where others may connect. */
	mode_t old = umask(0777 & ~mode);
	int status = bind(fd, (struct sockaddr *)&address, sizeof address);
	umask(old);
	if (status < 0) {
		int error = errno;
		close(fd);
		return error;
	}
	chmod(path, mode); /* the mode exactly, whatever the umask was */
	int error = add_listener(fd, path, 0, 1);
	if (error) {
		unlink(path);
		return error;
	}
	struct listener *l = &listeners[listener_count - 1];
	if (lstat(path, &st) == 0) {
		l->owns_path = 1;
		l->dev = st.st_dev;
		l->ino = st.st_ino;
	}
	return 0;
}

/* X11: the first display from 10 whose TCP port on the loopback is free and
 * whose Unix socket is not some X server's; also that socket when possible. */
static int listen_x11(unsigned *display)
{
	for (unsigned d = 10; d < 1000; d++) {
		char path[sizeof ((struct sockaddr_un *)0)->sun_path];
		snprintf(path, sizeof path, "/tmp/.X11-unix/X%u", d);
		struct stat st;
		if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode) && socket_in_use(path))
			continue;
		unsigned bound;
		if (listen_tcp("127.0.0.1", 6000 + d, &bound))
			continue;
		*display = d;
		if (mkdir("/tmp/.X11-unix", 01777) == 0)
			chmod("/tmp/.X11-unix", 01777); /* what X servers make it: anyone, sticky */
		if (listen_unix(path, 0777))
			note("display %u: TCP only, no socket at %s", d, path);
		return 0;
	}
	return EADDRINUSE;
}

static void answer_setup(unsigned port, unsigned display)
{
	unsigned char payload[64];
	size_t n = head(payload, 5, setup_type == C_X11 ? 2 : 1);
	n += text(payload + n, "BindPort");
	n += head(payload + n, 0, port);
	if (setup_type == C_X11) {
		n += text(payload + n, "Display");
		n += head(payload + n, 0, display);
	}
	send_packet(P_SUCCESS, 0, payload, n);
}

static void setup_failed(const char *format, ...)
{
	char message[MAX_TEXT + 256];
	va_list args;
	va_start(args, format);
	vsnprintf(message, sizeof message, format, args);
	va_end(args);
	note("%s", message);
	send_packet(P_ERROR, 0, (const unsigned char *)message, strlen(message));
	finish(1);
}

static void start(const struct packet *p)
{
	struct fields f;
	if (p->type != P_SETUP)
		setup_failed("expected a setup packet, not type %llu", (unsigned long long)p->type);
	if (!read_fields(p, &f))
		setup_failed("setup: bad %s", f.problem);
	setup_type = (int)f.connection_type;
	unsigned port = 0, display = 0;
	int error = 0;
	switch (f.connection_type) {
	case C_PORT_DIAL:
	case C_SOCKET_DIAL:
		send_packet(P_SUCCESS, 0, NULL, 0);
		return;
	case C_PORT_FORWARD:
		if (!strcmp(f.protocol, "unix")) {
			error = listen_unix(f.bind_host, 0666);
			break;
		}
		if (f.bind_port > 65535)
			setup_failed("listen %s:%llu: no such port", f.bind_host, (unsigned long long)f.bind_port);
		error = listen_tcp(f.bind_host, (unsigned)f.bind_port, &port);
		if (error < 0)
			setup_failed("listen %s:%llu: %s", f.bind_host, (unsigned long long)f.bind_port,
			             gai_strerror(-error));
		break;
	case C_SOCKET_FORWARD:
	case C_SSH_AGENT:
		/* An agent socket is the user's key: for the user alone. */
		error = listen_unix(f.bind_host, f.connection_type == C_SSH_AGENT ? 0600 : 0666);
		break;
	case C_X11:
		error = listen_x11(&display);
		port = error ? 0 : 6000 + display;
		break;
	default:
		setup_failed("unknown connection type %llu", (unsigned long long)f.connection_type);
	}
	if (error) {
		if (f.connection_type == C_X11)
			setup_failed("listen for X11: no free display from 10 to 999");
		if (f.connection_type == C_PORT_FORWARD && strcmp(f.protocol, "unix"))
			setup_failed("listen %s:%llu: %s", f.bind_host, (unsigned long long)f.bind_port,
			             strerror(error));
		setup_failed("listen %s: %s", f.bind_host,
		             error == EEXIST ? "the path exists and is not a socket" : strerror(error));
	}
	listening_mode = 1;
	single_connection = f.single;
	/* Socket files go with the process when it is told to end. */
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGHUP, on_signal);
	answer_setup(port, display);
}

static void accept_from(struct listener *l)
{
	struct sockaddr_storage peer;
	socklen_t size = sizeof peer;
	int fd = accept4(l->fd, (struct sockaddr *)&peer, &size, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0) {
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
			/* The waiting connection stays; polling for it again now would spin. */
			note("accept: %s (waiting for a connection to end)", strerror(errno));
			accept_paused = 1;
		}
		return;
	}
	if (live_count >= MAX_CONNECTIONS) {
		note("too many connections: closing a new one");
		close(fd);
		return;
	}
	char address[INET6_ADDRSTRLEN] = "", service[16] = "0";
	if (!l->unix_socket &&
	    getnameinfo((struct sockaddr *)&peer, size, address, sizeof address, service,
	                sizeof service, NI_NUMERICHOST | NI_NUMERICSERV))
		address[0] = 0;
	struct connection *c = add_connection(++last_id, fd, S_WAITING);
	unsigned char payload[MAX_TEXT + 256];
	size_t n = head(payload, 5, 5);
	n += text(payload + n, "Protocol");
	n += text(payload + n, l->unix_socket ? "unix" : "tcp");
	n += text(payload + n, "ConnectedAddress");
	n += text(payload + n, l->address);
	n += text(payload + n, "ConnectedPort");
	n += head(payload + n, 0, l->port);
	n += text(payload + n, "OriginatorAddress");
	n += text(payload + n, address);
	n += text(payload + n, "OriginatorPort");
	n += head(payload + n, 0, strtoul(service, NULL, 10));
	/* Closed before the gateway hears of the connection, so that nobody can
	 * connect a second time once the first is known. */
	if (single_connection)
		close_listeners();
	send_packet(P_NEW, c->id, payload, n);
}

/* ---- packets from the gateway ---- */

/* A note for a packet about a connection that is not open: once per id, as
 * DATA still on its way after a close is no news. */
static void ignoring(const struct packet *p)
{
	if (p->id == last_noted_id)
		return;
	last_noted_id = p->id;
	note("ignoring a packet of type %llu for connection %llu, which is not open",
	     (unsigned long long)p->type, (unsigned long long)p->id);
}

static void handle(const struct packet *p)
{
	struct connection *c = p->id ? find(p->id) : NULL;
	switch (p->type) {
	case P_NEW: {
		struct fields f;
		if (p->id == 0 || c) {
			ignoring(p);
		} else if (listening_mode) {
			send_error(p->id, "this helper listens; it does not dial");
		} else if (p->id <= last_id) {
			send_error(p->id, "connection ids must grow");
		} else {
			last_id = p->id;
			if (!read_fields(p, &f))
				send_error(p->id, "new connection: bad %s", f.problem);
			else
				dial(p->id, &f);
		}
		return;
	}
	case P_DATA:
		if (!c || c->state == S_WAITING || c->write_done)
			ignoring(p);
		else
			deliver(c, p->payload, p->payload_len);
		return;
	case P_CLOSE_WRITE:
		if (!c || c->state == S_WAITING)
			ignoring(p);
		else if (!c->write_done) {
			c->write_done = 1;
			settle(c);
		}
		return;
	case P_CLOSE:
		if (c) {
			/* What is still held for the socket, as far as it takes it now. */
			if (c->state == S_OPEN && pending(c) &&
			    write(c->fd, c->out.data + c->out.start, pending(c)) < (ssize_t)pending(c))
				note("connection %llu closed with bytes unsent", (unsigned long long)c->id);
			drop(c, 0);
		} else if (p->id) {
			ignoring(p);
		}
		/* Answered even when already closed here: the two sides' closes crossed,
		 * and the gateway may be waiting for this answer to forget the id. */
		if (p->id)
			send_packet(P_SUCCESS, p->id, NULL, 0);
		return;
	case P_SUCCESS:
		if (c && c->state == S_WAITING)
			c->state = S_OPEN;
		/* otherwise: the answer to a CLOSE_CONNECTION of ours */
		return;
	case P_ERROR:
		if (c)
			drop(c, 0);
		return;
	case P_NO_MORE:
		no_more = 1;
		close_listeners();
		return;
	default:
		note("ignoring a packet of type %llu", (unsigned long long)p->type);
	}
}

static void read_socket(struct connection *c)
{
	ssize_t n = read(c->fd, read_buffer, sizeof read_buffer);
	if (n > 0) {
		send_packet(P_DATA, c->id, read_buffer, (size_t)n);
		return;
	}
	if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
		return;
	if (n < 0) {
		drop(c, 1);
		return;
	}
	c->read_done = 1;
	send_packet(P_CLOSE_WRITE, c->id, NULL, 0);
	settle(c);
}

/* ---- the loop ---- */

static struct buffer input;
static int started;

/* Handle the complete packets waiting in `input`, as far as the sockets' buffers allow. */
static void take_input(void)
{
	while (input_allowed() && input.end > input.start) {
		struct packet packet = {0};
		long used = read_map(input.data + input.start, input.end - input.start, take_packet_field, &packet);
		if (used == INCOMPLETE) {
			if (input.end - input.start > MAX_PACKET) {
				note("a packet larger than the protocol allows");
				finish(2);
			}
			return;
		}
		if (used == MALFORMED || (size_t)used > MAX_PACKET) {
			note("malformed input: not a packet stream");
			finish(2);
		}
		input.start += (size_t)used;
		if (!started) {
			start(&packet);
			started = 1;
		} else {
			handle(&packet);
		}
	}
	if (input.start == input.end)
		input.start = input.end = 0;
}

/* Read what stdin holds; 0 at its end. */
static int read_input(void)
{
	if (input.size - input.end < READ_SIZE) {
		size_t used = input.end - input.start;
		if (used)
			memmove(input.data, input.data + input.start, used);
		input.start = 0;
		input.end = used;
		if (input.size - used < READ_SIZE) {
			/* Only an incomplete packet is kept, so this stays under 2 * MAX_PACKET. */
			size_t size = input.size ? input.size * 2 : INPUT_BUFFER;
			unsigned char *grown = realloc(input.data, size);
			if (!grown) {
				note("out of memory");
				finish(1);
			}
			input.data = grown;
			input.size = size;
		}
	}
	ssize_t n = read(STDIN_FILENO, input.data + input.end, input.size - input.end);
	if (n < 0)
		return errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK;
	input.end += (size_t)n;
	return n > 0;
}

/* stdin ended: the gateway is done with every connection. What the sockets
 * still hold goes out as far as they take it now; then everything closes. */
static void input_ended(void)
{
	for (int i = 0; i < table_count; i++) {
		struct connection *c = table[i];
		if (!c->dead && c->state == S_OPEN && pending(c) &&
		    write(c->fd, c->out.data + c->out.start, pending(c)) < (ssize_t)pending(c))
			note("connection %llu closed with bytes unsent", (unsigned long long)c->id);
	}
	finish(0);
}

/* So that 4096 connections fit, where the soft limit is lower than the hard one. */
static void raise_descriptor_limit(void)
{
	struct rlimit limit;
	rlim_t wanted = MAX_CONNECTIONS + MAX_LISTENERS + 16;
	if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < wanted) {
		limit.rlim_cur = limit.rlim_max == RLIM_INFINITY || limit.rlim_max > wanted ? wanted : limit.rlim_max;
		setrlimit(RLIMIT_NOFILE, &limit);
	}
}

int main(int argc, char **argv)
{
	if (argc > 2 || (argc == 2 && strcmp(argv[1], "forward-server"))) {
		fputs("usage: forward-server [forward-server]\n", stderr);
		return 1;
	}
	signal(SIGPIPE, SIG_IGN); /* a socket or the gateway gone is an error return, not death */
	raise_descriptor_limit();
	/* Larger pipes carry more per system call (best effort: the streams may be
	 * no pipes, or the system's limit lower). */
	fcntl(STDOUT_FILENO, F_SETPIPE_SZ, 4 * READ_SIZE);
	fcntl(STDIN_FILENO, F_SETPIPE_SZ, 4 * READ_SIZE);
	static struct pollfd polls[1 + MAX_LISTENERS + MAX_CONNECTIONS];
	static struct connection *polled[MAX_CONNECTIONS];
	for (;;) {
		bury();
		compact();
		take_input();
		if (no_more && !live_count)
			finish(0);
		int count = 0, timeout = -1;
		polls[count++] = (struct pollfd){input_allowed() ? STDIN_FILENO : -1, POLLIN, 0};
		int first_listener = count, polled_listeners = accept_paused ? 0 : listener_count;
		for (int i = 0; i < polled_listeners; i++)
			polls[count++] = (struct pollfd){listeners[i].fd, POLLIN, 0};
		int first_connection = count, polled_connections = 0;
		long long now = connecting_count ? now_ms() : 0;
		for (int i = 0; i < table_count; i++) {
			struct connection *c = table[i];
			short events = 0;
			if (c->dead)
				continue;
			if (c->state == S_CONNECTING) {
				events = POLLOUT;
				long long left = c->deadline > now ? c->deadline - now : 0;
				if (timeout < 0 || left < timeout)
					timeout = (int)left;
			} else if (c->state == S_OPEN) {
				if (!c->read_done)
					events |= POLLIN;
				if (pending(c))
					events |= POLLOUT;
			}
			if (!events)
				continue; /* a hung-up socket nobody waits on must not wake the loop */
			polled[polled_connections++] = c;
			polls[count++] = (struct pollfd){c->fd, events, 0};
		}
		if (poll(polls, (nfds_t)count, timeout) < 0) {
			if (errno == EINTR)
				continue;
			note("poll: %s", strerror(errno));
			finish(1);
		}
		now = connecting_count ? now_ms() : 0;
		for (int i = 0; i < polled_connections; i++) {
			short revents = polls[first_connection + i].revents;
			struct connection *c = polled[i];
			if (c->dead)
				continue; /* dropped meanwhile */
			if (c->state == S_CONNECTING) {
				if (revents)
					connect_done(c, 0);
				else if (now >= c->deadline)
					connect_done(c, 1);
				continue;
			}
			/* A hang-up with bytes still to write: the write says what happened. */
			if (revents & (POLLOUT | POLLERR | POLLHUP) && pending(c) && flush(c))
				continue;
			if (revents & (POLLIN | POLLHUP | POLLERR) && !c->read_done)
				read_socket(c);
		}
		for (int i = 0; i < polled_listeners && i < listener_count; i++)
			if (polls[first_listener + i].revents & POLLIN)
				accept_from(&listeners[i]);
		if (polls[0].revents & (POLLIN | POLLHUP | POLLERR) && !read_input())
			input_ended();
	}
}
