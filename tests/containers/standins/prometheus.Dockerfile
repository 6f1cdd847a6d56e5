# Stand-in for the official Prometheus image: Debian's prometheus as the entrypoint, run as nobody,
# its data in /prometheus (owned by nobody, so a new named volume is too), and wget for the healthcheck.
ARG ROOTFS
FROM ${ROOTFS}
RUN mkdir -p /prometheus /etc/prometheus \
 && chown -R nobody:nogroup /prometheus /etc/prometheus
USER nobody
EXPOSE 9090
VOLUME ["/prometheus"]
WORKDIR /prometheus
ENTRYPOINT ["/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
