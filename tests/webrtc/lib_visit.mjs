// lib_visit.mjs - what every media test needs around one server: a
// department with a doctor on shift now, and tokens for the people in it.
import { api } from './lib_server.mjs';

let seq = 0;

// Creates department `dept` and doctor `doctorId` with a shift covering
// now, through the admin REST API. Returns tokens for a patient, the doctor
// and a supervisor.
export async function prepareClinic(srv, { dept = 'cardiology', doctorId = 'd-webrtc', patientId, capacity = 4 } = {}) {
  seq++;
  const pid = patientId || `p-webrtc-${process.pid}-${seq}`;
  const admin = srv.token('admin-webrtc', 'admin');
  const now = Date.now();
  const must = async (method, p, body, okIfConflict = true) => {
    const r = await api(srv, method, p, { token: admin, body });
    if (r.status >= 300 && !(okIfConflict && r.status === 409 && p !== '/api/v1/shifts'))
      throw new Error(`${method} ${p} -> ${r.status} ${r.text}`);
    return r.body;
  };
  await must('POST', '/api/v1/departments', { id: dept, name: `Dept ${dept}` });
  await must('POST', '/api/v1/doctors', { id: doctorId, name: 'Dr Test', dept_id: dept, licence_no: `LIC-${doctorId}` });
  await must('POST', '/api/v1/shifts', {
    doctor_id: doctorId, dept_id: dept, capacity,
    start: new Date(now - 3600e3).toISOString(), end: new Date(now + 3 * 3600e3).toISOString(),
  }, false);
  return {
    dept,
    doctorId,
    patientId: pid,
    patientToken: srv.token(pid, 'patient', { dept }),
    doctorToken: srv.token(doctorId, 'doctor', { dept }),
    supervisorToken: (sub = 's-webrtc') => srv.token(sub, 'supervisor'),
    patientTokenFor: (sub) => srv.token(sub, 'patient', { dept }),
  };
}
