output "public_ip" {
  description = "Public IPv4 address of the instance."
  value       = aws_instance.mlops.public_ip
}

output "api_url" {
  description = "Flask prediction API."
  value       = "http://${aws_instance.mlops.public_ip}:5000"
}

output "streamlit_url" {
  description = "Streamlit UI."
  value       = "http://${aws_instance.mlops.public_ip}:8501"
}

output "prometheus_url" {
  description = "Prometheus."
  value       = "http://${aws_instance.mlops.public_ip}:9090"
}

output "ssh_command" {
  description = "SSH login (needs key_name). Bootstrap log: /var/log/mlops-bootstrap.log."
  value       = var.key_name == null ? "no key_name set: SSH login disabled" : "ssh -i <path-to-${var.key_name}.pem> ec2-user@${aws_instance.mlops.public_ip}"
}
