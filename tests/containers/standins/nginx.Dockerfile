# Stand-in for the official nginx image: Debian's nginx (with the upstream "resolve" parameter), the
# image's nginx user (uid/gid 101) and wget, which the compose healthcheck calls.
ARG ROOTFS
FROM ${ROOTFS}
RUN groupadd --system --gid 101 nginx \
 && useradd --system --uid 101 --gid nginx --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin nginx
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
EXPOSE 80
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
