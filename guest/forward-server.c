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
 * poll loop, no threads: sockets are non-blocking, writes to stdout block (the
 * gateway's stream backing up is what slows the sockets down), and bytes
 * waiting for a socket are bounded: while a socket holds more than
 * MAX_PENDING, stdin is not read.
 *
 * Usage: forward-server [forward-server]
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
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

enum { P_SETUP, P_SUCCESS, P_ERROR, P_DATA, P_NEW, P_CLOSE, P_NO_MORE, P_CLOSE_WRITE };
enum { C_X11, C_PORT_FORWARD, C_PORT_DIAL, C_SOCKET_FORWARD, C_SOCKET_DIAL, C_SSH_AGENT };
enum { S_WAITING, S_OPEN };

#define MAX_CONNECTIONS 4096
#define MAX_LISTENERS 16
#define MAX_PAYLOAD (16u * 1024 * 1024)
#define READ_SIZE (128 * 1024)
#define MAX_PENDING (1024 * 1024)
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
	int read_done;  /* the socket gave EOF; CLOSE_WRITE sent */
	int write_done; /* the gateway sent CLOSE_WRITE */
	int shut;       /* shutdown(SHUT_WR) done */
	struct buffer out;
};

struct packet {
	uint64_t type, id;
	const unsigned char *payload;
	size_t payload_len;
};

struct fields {
	uint64_t connection_type, bind_port, connected_port, originator_port, single;
	char bind_host[MAX_TEXT], protocol[16], connected_address[MAX_TEXT];
	char originator_address[MAX_TEXT];
};

static struct connection *connections[MAX_CONNECTIONS];
static int connection_count;
static int listeners[MAX_LISTENERS];
static int listener_count;
static char socket_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
static int remove_socket_path;
static char x11_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
static struct fields setup;
static int listening_mode, no_more, single_connection;
static uint64_t last_id;
static unsigned bound_port;
static char bound_host[MAX_TEXT];
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

static void cleanup(void)
{
	for (int i = 0; i < listener_count; i++)
		close(listeners[i]);
	listener_count = 0;
	if (remove_socket_path)
		unlink(socket_path);
	remove_socket_path = 0;
	if (x11_path[0])
		unlink(x11_path);
	x11_path[0] = 0;
}

static void finish(int status)
{
	for (int i = 0; i < connection_count; i++)
		close(connections[i]->fd);
	cleanup();
	exit(status);
}

/* ---- output: complete writes to stdout ---- */

static void write_all(const unsigned char *data, size_t length)
{
	while (length) {
		ssize_t n = write(STDOUT_FILENO, data, length);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			finish(0); /* the gateway is gone */
		}
		data += n;
		length -= (size_t)n;
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

static void send_packet(int type, uint64_t id, const unsigned char *payload, size_t length)
{
	unsigned char header[64];
	size_t n = head(header, 5, 3);
	n += text(header + n, "Type");
	n += head(header + n, 0, (uint64_t)type);
	n += text(header + n, "ConnectionId");
	n += head(header + n, 0, id);
	n += text(header + n, "Payload");
	if (length == 0) {
		header[n++] = 0xf6; /* null, as Go writes an empty slice */
		write_all(header, n);
		return;
	}
	n += head(header + n, 2, length);
	write_all(header, n);
	write_all(payload, length);
}

static void send_error(uint64_t id, const char *format, ...)
{
	char message[512];
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

static int read_head(struct reader *r, int *major, uint64_t *value)
{
	if (r->pos >= r->length)
		return INCOMPLETE;
	unsigned char initial = r->data[r->pos++];
	int info = initial & 0x1f;
	*major = initial >> 5;
	if (*major == 7) {
		if (info < 20 || info > 23)
			return MALFORMED;
		*value = (uint64_t)info;
		return 0;
	}
	if (info < 24) {
		*value = (uint64_t)info;
		return 0;
	}
	if (info > 27)
		return MALFORMED; /* indefinite lengths and reserved values */
	size_t width = (size_t)1 << (info - 24);
	if (r->length - r->pos < width)
		return INCOMPLETE;
	uint64_t v = 0;
	for (size_t i = 0; i < width; i++)
		v = v << 8 | r->data[r->pos++];
	*value = v;
	return 0;
}

/* One scalar item: an unsigned integer, a string (pointer into the input), or a simple value. */
struct item {
	int major;
	uint64_t value;
	const unsigned char *bytes;
};

static int read_item(struct reader *r, struct item *item)
{
	int status = read_head(r, &item->major, &item->value);
	if (status)
		return status;
	if (item->major == 2 || item->major == 3) {
		if (item->value > MAX_PAYLOAD)
			return MALFORMED;
		if (r->length - r->pos < item->value)
			return INCOMPLETE;
		item->bytes = r->data + r->pos;
		r->pos += item->value;
		return 0;
	}
	if (item->major == 0 || item->major == 7)
		return 0;
	return MALFORMED;
}

static int key_is(const struct item *key, const char *name)
{
	return key->major == 3 && key->value == strlen(name) && !memcmp(key->bytes, name, key->value);
}

/* A map of scalars: each field through `take`. Returns the bytes used, INCOMPLETE or MALFORMED. */
static long read_map(const unsigned char *data, size_t length,
                     void (*take)(void *, const struct item *, const struct item *), void *target)
{
	struct reader r = {data, length, 0};
	int major;
	uint64_t count;
	int status = read_head(&r, &major, &count);
	if (status)
		return status;
	if (major != 5 || count > 64)
		return MALFORMED;
	for (uint64_t i = 0; i < count; i++) {
		struct item key, value;
		if ((status = read_item(&r, &key)) || (status = read_item(&r, &value)))
			return status;
		if (key.major != 3)
			return MALFORMED;
		take(target, &key, &value);
	}
	return (long)r.pos;
}

static void take_packet_field(void *target, const struct item *key, const struct item *value)
{
	struct packet *p = target;
	if (key_is(key, "Type") && value->major == 0)
		p->type = value->value;
	else if (key_is(key, "ConnectionId") && value->major == 0)
		p->id = value->value;
	else if (key_is(key, "Payload") && value->major == 2) {
		p->payload = value->bytes;
		p->payload_len = value->value;
	}
}

static void copy_text(char *out, size_t size, const struct item *value)
{
	size_t n = value->value < size - 1 ? value->value : size - 1;
	memcpy(out, value->bytes, n);
	out[n] = 0;
}

static void take_fields(void *target, const struct item *key, const struct item *value)
{
	struct fields *f = target;
	if (value->major == 0) {
		if (key_is(key, "ConnectionType"))
			f->connection_type = value->value;
		else if (key_is(key, "BindPort"))
			f->bind_port = value->value;
		else if (key_is(key, "ConnectedPort"))
			f->connected_port = value->value;
		else if (key_is(key, "OriginatorPort"))
			f->originator_port = value->value;
	} else if (value->major == 3) {
		if (key_is(key, "BindHost"))
			copy_text(f->bind_host, sizeof f->bind_host, value);
		else if (key_is(key, "Protocol"))
			copy_text(f->protocol, sizeof f->protocol, value);
		else if (key_is(key, "ConnectedAddress"))
			copy_text(f->connected_address, sizeof f->connected_address, value);
		else if (key_is(key, "OriginatorAddress"))
			copy_text(f->originator_address, sizeof f->originator_address, value);
	} else if (value->major == 7 && key_is(key, "SingleConnection")) {
		f->single = value->value == 21;
	}
}

static int read_fields(const struct packet *p, struct fields *f)
{
	memset(f, 0, sizeof *f);
	return p->payload_len && read_map(p->payload, p->payload_len, take_fields, f) ==
	                             (long)p->payload_len;
}

/* ---- connections ---- */

/* Whether `c` is still open, without reading it (it may have been freed). */
static int alive(const struct connection *c)
{
	for (int i = 0; i < connection_count; i++)
		if (connections[i] == c)
			return 1;
	return 0;
}

static struct connection *find(uint64_t id)
{
	for (int i = 0; i < connection_count; i++)
		if (connections[i]->id == id)
			return connections[i];
	return NULL;
}

static struct connection *add_connection(uint64_t id, int fd, int state)
{
	struct connection *c = calloc(1, sizeof *c);
	if (!c) {
		note("out of memory");
		finish(1);
	}
	c->id = id;
	c->fd = fd;
	c->state = state;
	connections[connection_count++] = c;
	return c;
}

static void drop(struct connection *c, int tell)
{
	if (tell)
		send_packet(P_CLOSE, c->id, NULL, 0);
	close(c->fd);
	for (int i = 0; i < connection_count; i++) {
		if (connections[i] == c) {
			connections[i] = connections[--connection_count];
			break;
		}
	}
	free(c->out.data);
	free(c);
}

static size_t pending(const struct connection *c)
{
	return c->out.end - c->out.start;
}

static void queue(struct connection *c, const unsigned char *data, size_t length)
{
	struct buffer *b = &c->out;
	if (b->start == b->end)
		b->start = b->end = 0;
	if (b->size - b->end < length) {
		size_t used = b->end - b->start;
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
}

/* After a write or a half-close: shut the sending side, or end a connection done both ways. */
static int settle(struct connection *c)
{
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

/* Write what the socket takes; 1 if the connection was dropped. */
static int flush(struct connection *c)
{
	while (pending(c)) {
		ssize_t n = write(c->fd, c->out.data + c->out.start, pending(c));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			drop(c, 1);
			return 1;
		}
		c->out.start += (size_t)n;
	}
	return settle(c);
}

static void set_nonblocking(int fd)
{
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* A blocking connect bounded by CONNECT_TIMEOUT_MS; the error number, or 0. */
static int connect_within(int fd, const struct sockaddr *address, socklen_t length)
{
	set_nonblocking(fd);
	if (connect(fd, address, length) == 0)
		return 0;
	if (errno != EINPROGRESS)
		return errno;
	struct pollfd p = {fd, POLLOUT, 0};
	int ready = poll(&p, 1, CONNECT_TIMEOUT_MS);
	if (ready == 0)
		return ETIMEDOUT;
	if (ready < 0)
		return errno;
	int error = 0;
	socklen_t size = sizeof error;
	getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &size);
	return error;
}

static void dial(uint64_t id, const struct fields *f)
{
	if (id <= last_id || find(id)) {
		note("ignoring a connection id used before: %llu", (unsigned long long)id);
		return;
	}
	last_id = id;
	if (connection_count >= MAX_CONNECTIONS) {
		send_error(id, "too many connections");
		return;
	}
	if (!strcmp(f->protocol, "unix")) {
		struct sockaddr_un address = {.sun_family = AF_UNIX};
		if (strlen(f->connected_address) >= sizeof address.sun_path) {
			send_error(id, "connect %s: path too long", f->connected_address);
			return;
		}
		strcpy(address.sun_path, f->connected_address);
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		int error = fd < 0 ? errno : connect_within(fd, (struct sockaddr *)&address, sizeof address);
		if (error) {
			if (fd >= 0)
				close(fd);
			send_error(id, "connect %s: %s", f->connected_address, strerror(error));
			return;
		}
		add_connection(id, fd, S_OPEN);
		send_packet(P_SUCCESS, id, NULL, 0);
		return;
	}
	char port[16];
	snprintf(port, sizeof port, "%llu", (unsigned long long)f->connected_port);
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *found = NULL;
	int status = getaddrinfo(f->connected_address, port, &hints, &found);
	if (status) {
		send_error(id, "connect %s:%s: %s", f->connected_address, port, gai_strerror(status));
		return;
	}
	int error = ECONNREFUSED;
	for (struct addrinfo *a = found; a; a = a->ai_next) {
		int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
		if (fd < 0) {
			error = errno;
			continue;
		}
		error = connect_within(fd, a->ai_addr, a->ai_addrlen);
		if (!error) {
			freeaddrinfo(found);
			add_connection(id, fd, S_OPEN);
			send_packet(P_SUCCESS, id, NULL, 0);
			return;
		}
		close(fd);
	}
	freeaddrinfo(found);
	send_error(id, "connect %s:%s: %s", f->connected_address, port, strerror(error));
}

/* ---- listening ---- */

static int add_listener(int fd)
{
	if (listen(fd, 128) < 0) {
		int error = errno;
		close(fd);
		return error;
	}
	set_nonblocking(fd);
	listeners[listener_count++] = fd;
	return 0;
}

static int listen_tcp(const char *host, unsigned port, unsigned *bound)
{
	const char *name = host;
	if (!host[0] || !strcmp(host, "*") || !strcmp(host, "0.0.0.0"))
		name = "0.0.0.0";
	char service[16];
	snprintf(service, sizeof service, "%u", port);
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *found = NULL;
	int status = getaddrinfo(name, service, &hints, &found);
	if (status)
		return -status; /* negative: a getaddrinfo error */
	int error = EADDRNOTAVAIL;
	*bound = port;
	for (struct addrinfo *a = found; a && listener_count < MAX_LISTENERS; a = a->ai_next) {
		int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
		if (fd < 0)
			continue;
		int on = 1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
		if (a->ai_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);
		if (*bound) { /* the port chosen for the first address serves the others too */
			if (a->ai_family == AF_INET)
				((struct sockaddr_in *)a->ai_addr)->sin_port = htons((uint16_t)*bound);
			else if (a->ai_family == AF_INET6)
				((struct sockaddr_in6 *)a->ai_addr)->sin6_port = htons((uint16_t)*bound);
		}
		if (bind(fd, a->ai_addr, a->ai_addrlen) < 0) {
			/* e.g. no IPv6 for "localhost": the other address is enough */
			error = errno;
			close(fd);
			continue;
		}
		struct sockaddr_storage local;
		socklen_t size = sizeof local;
		getsockname(fd, (struct sockaddr *)&local, &size);
		*bound = ntohs(local.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&local)->sin6_port
		                                          : ((struct sockaddr_in *)&local)->sin_port);
		if ((error = add_listener(fd)))
			break;
	}
	freeaddrinfo(found);
	return listener_count ? 0 : error;
}

static int listen_unix(const char *path, mode_t mode, int replace)
{
	struct sockaddr_un address = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof address.sun_path)
		return ENAMETOOLONG;
	struct stat st;
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode) || !replace)
			return EEXIST;
		unlink(path); /* a socket left behind by a program that ended */
	}
	strcpy(address.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return errno;
	mode_t old = umask(0777 & ~mode);
	int status = bind(fd, (struct sockaddr *)&address, sizeof address);
	umask(old);
	if (status < 0) {
		int error = errno;
		close(fd);
		return error;
	}
	chmod(path, mode);
	return add_listener(fd);
}

/* X11: the first free display from 10, on the loopback and, when possible, its Unix socket. */
static int listen_x11(unsigned *display)
{
	for (unsigned d = 10; d < 1000; d++) {
		unsigned bound;
		if (listen_tcp("127.0.0.1", 6000 + d, &bound))
			continue;
		*display = d;
		if (mkdir("/tmp/.X11-unix", 01777) == 0 || errno == EEXIST) {
			chmod("/tmp/.X11-unix", 01777);
			char path[sizeof x11_path];
			snprintf(path, sizeof path, "/tmp/.X11-unix/X%u", d);
			if (listen_unix(path, 0777, 0) == 0)
				strcpy(x11_path, path);
		}
		return 0;
	}
	return EADDRINUSE;
}

static void answer_setup(void)
{
	unsigned char payload[64];
	size_t n = head(payload, 5, setup.connection_type == C_X11 ? 2 : 1);
	n += text(payload + n, "BindPort");
	n += head(payload + n, 0, setup.connection_type == C_X11 ? 6000 + bound_port : bound_port);
	if (setup.connection_type == C_X11) {
		n += text(payload + n, "Display");
		n += head(payload + n, 0, bound_port);
	}
	send_packet(P_SUCCESS, 0, payload, n);
}

static void start(const struct packet *p)
{
	if (p->type != P_SETUP || !read_fields(p, &setup)) {
		send_error(0, "expected a setup packet");
		finish(1);
	}
	int error = 0;
	switch (setup.connection_type) {
	case C_PORT_DIAL:
	case C_SOCKET_DIAL:
		send_packet(P_SUCCESS, 0, NULL, 0);
		return;
	case C_PORT_FORWARD:
		if (!strcmp(setup.protocol, "unix"))
			goto socket;
		if (setup.bind_port > 65535) {
			error = EINVAL;
			break;
		}
		error = listen_tcp(setup.bind_host, (unsigned)setup.bind_port, &bound_port);
		if (error < 0) {
			send_error(0, "listen %s:%llu: %s", setup.bind_host,
			           (unsigned long long)setup.bind_port, gai_strerror(-error));
			finish(1);
		}
		snprintf(bound_host, sizeof bound_host, "%s", setup.bind_host);
		break;
	case C_SOCKET_FORWARD:
	case C_SSH_AGENT:
	socket:
		error = listen_unix(setup.bind_host, setup.connection_type == C_SSH_AGENT ? 0600 : 0666, 1);
		if (!error) {
			strcpy(socket_path, setup.bind_host);
			remove_socket_path = 1;
			snprintf(bound_host, sizeof bound_host, "%s", setup.bind_host);
		}
		break;
	case C_X11:
		error = listen_x11(&bound_port);
		snprintf(bound_host, sizeof bound_host, "127.0.0.1");
		break;
	default:
		send_error(0, "unknown connection type %llu", (unsigned long long)setup.connection_type);
		finish(1);
	}
	if (error) {
		send_error(0, "listen %s:%llu: %s", setup.bind_host, (unsigned long long)setup.bind_port,
		           strerror(error));
		finish(1);
	}
	listening_mode = 1;
	single_connection = (int)setup.single;
	answer_setup();
}

static void accept_from(int listener)
{
	struct sockaddr_storage peer;
	socklen_t size = sizeof peer;
	int fd = accept4(listener, (struct sockaddr *)&peer, &size, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return;
	if (connection_count >= MAX_CONNECTIONS) {
		note("too many connections: closing a new one");
		close(fd);
		return;
	}
	char address[INET6_ADDRSTRLEN] = "", service[16] = "0";
	int unix_socket = peer.ss_family == AF_UNIX;
	if (!unix_socket)
		getnameinfo((struct sockaddr *)&peer, size, address, sizeof address, service,
		            sizeof service, NI_NUMERICHOST | NI_NUMERICSERV);
	struct connection *c = add_connection(++last_id, fd, S_WAITING);
	unsigned char payload[3 * MAX_TEXT];
	size_t n = head(payload, 5, 5);
	n += text(payload + n, "Protocol");
	n += text(payload + n, unix_socket ? "unix" : "tcp");
	n += text(payload + n, "ConnectedAddress");
	n += text(payload + n, bound_host);
	n += text(payload + n, "ConnectedPort");
	n += head(payload + n, 0, unix_socket ? 0 : bound_port);
	n += text(payload + n, "OriginatorAddress");
	n += text(payload + n, address);
	n += text(payload + n, "OriginatorPort");
	n += head(payload + n, 0, (uint64_t)strtoul(service, NULL, 10));
	send_packet(P_NEW, c->id, payload, n);
	if (single_connection)
		cleanup();
}

/* ---- packets from the gateway ---- */

static void handle(const struct packet *p)
{
	struct connection *c = p->id ? find(p->id) : NULL;
	switch (p->type) {
	case P_NEW: {
		struct fields f;
		if (listening_mode || !read_fields(p, &f)) {
			send_error(p->id, "not a connection this helper can make");
			return;
		}
		dial(p->id, &f);
		return;
	}
	case P_DATA:
		if (c && c->state == S_OPEN && !c->write_done) {
			queue(c, p->payload, p->payload_len);
			flush(c);
		}
		return;
	case P_CLOSE_WRITE:
		if (c && c->state == S_OPEN) {
			c->write_done = 1;
			settle(c);
		}
		return;
	case P_CLOSE:
		if (c) {
			set_nonblocking(c->fd);
			if (pending(c) && write(c->fd, c->out.data + c->out.start, pending(c)) < 0)
				note("connection %llu closed with data unsent", (unsigned long long)c->id);
			drop(c, 0);
		}
		send_packet(P_SUCCESS, p->id, NULL, 0);
		return;
	case P_SUCCESS:
		if (c && c->state == S_WAITING)
			c->state = S_OPEN;
		return;
	case P_ERROR:
		if (c)
			drop(c, 0);
		return;
	case P_NO_MORE:
		no_more = 1;
		cleanup();
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

int main(int argc, char **argv)
{
	if (argc > 2 || (argc == 2 && strcmp(argv[1], "forward-server"))) {
		fputs("usage: forward-server [forward-server]\n", stderr);
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	/* A larger pipe towards the engine lets it take more per read (best effort:
	 * stdout may be no pipe, or the limit lower). */
	fcntl(STDOUT_FILENO, F_SETPIPE_SZ, READ_SIZE * 4);
	struct buffer in = {0};
	int started = 0, stdin_open = 1;
	struct pollfd polls[1 + MAX_LISTENERS + MAX_CONNECTIONS];
	struct connection *polled[MAX_CONNECTIONS];
	for (;;) {
		if (no_more && !connection_count)
			finish(0);
		int count = 0, reading = 1;
		for (int i = 0; i < connection_count; i++)
			if (pending(connections[i]) > MAX_PENDING)
				reading = 0;
		polls[count++] = (struct pollfd){stdin_open && reading ? STDIN_FILENO : -1, POLLIN, 0};
		int first_listener = count;
		for (int i = 0; i < listener_count; i++)
			polls[count++] = (struct pollfd){listeners[i], POLLIN, 0};
		int first_connection = count;
		for (int i = 0; i < connection_count; i++) {
			struct connection *c = connections[i];
			short events = 0;
			if (c->state == S_OPEN && !c->read_done)
				events |= POLLIN;
			if (pending(c))
				events |= POLLOUT;
			polled[i] = c;
			/* Nothing wanted: a hung-up socket must not wake the loop over and over. */
			polls[count++] = (struct pollfd){events ? c->fd : -1, events, 0};
		}
		int polled_connections = connection_count;
		if (poll(polls, (nfds_t)count, -1) < 0) {
			if (errno == EINTR)
				continue;
			note("poll: %s", strerror(errno));
			finish(1);
		}
		for (int i = 0; i < polled_connections; i++) {
			struct pollfd *p = &polls[first_connection + i];
			struct connection *c = polled[i];
			if (!alive(c))
				continue; /* dropped meanwhile */
			if (p->revents & POLLOUT && flush(c))
				continue;
			if (p->revents & (POLLIN | POLLHUP | POLLERR) && c->state == S_OPEN && !c->read_done)
				read_socket(c);
		}
		for (int i = 0; i < listener_count && first_listener + i < first_connection; i++)
			if (polls[first_listener + i].revents & POLLIN)
				accept_from(listeners[i]);
		if (!(polls[0].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		if (in.size - in.end < READ_SIZE) {
			size_t used = in.end - in.start;
			memmove(in.data, in.data + in.start, used);
			in.start = 0;
			in.end = used;
			if (in.size - used < READ_SIZE) {
				size_t size = in.size ? in.size * 2 : 2 * READ_SIZE;
				unsigned char *grown = realloc(in.data, size);
				if (!grown) {
					note("out of memory");
					finish(1);
				}
				in.data = grown;
				in.size = size;
			}
		}
		ssize_t n = read(STDIN_FILENO, in.data + in.end, in.size - in.end);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			finish(0);
		in.end += (size_t)n;
		for (;;) {
			struct packet packet = {0};
			long used = read_map(in.data + in.start, in.end - in.start, take_packet_field, &packet);
			if (used == INCOMPLETE) {
				if (in.end - in.start > MAX_PAYLOAD + 64) {
					note("a packet larger than the protocol allows");
					finish(2);
				}
				break;
			}
			if (used == MALFORMED) {
				note("malformed input: not a packet stream");
				finish(2);
			}
			in.start += (size_t)used;
			if (!started) {
				start(&packet);
				started = 1;
			} else {
				handle(&packet);
			}
		}
	}
}
